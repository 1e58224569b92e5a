"""What the `knit` commands ask of a running knit, and how they ask a `knit dev`.

`Control` is the interface the commands use, as `kn` uses its serving client: admission's
context, apply, delete, Services, traffic edits, eventing objects. `LocalControl` is it for
`knit dev`: JSON over HTTP on 127.0.0.1, with the token `knit dev` left in the user's token
file (or KNIT_CONTROL_TOKEN). A Kubernetes API can stand behind the same interface."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from knit.admission import Context
from knit.control_token import CONTROL_URL_ENV, DEFAULT_PORT, token_for

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


class ControlError(RuntimeError):
    """The control API refused or could not be reached; `problems` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def control_url(given: str | None) -> str:
    return (given or os.environ.get(CONTROL_URL_ENV) or DEFAULT_URL).rstrip("/")


def call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    token = token_for(base)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            answer = json.loads(error.read())
            problems = answer.get("problems") or [answer["error"]["message"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            problems = [f"{base}{path} answered {error.code}"]
        raise ControlError(problems) from None
    except (urllib.error.URLError, OSError) as error:
        raise ControlError(
            [
                f"no knit dev answered at {base} ({getattr(error, 'reason', error)}); start one with "
                f"`knit dev -f <manifests>`, or point {CONTROL_URL_ENV} / --control at it"
            ]
        ) from None


@runtime_checkable
class Control(Protocol):
    """A running knit, as the commands see it. Every method raises ControlError when refused."""

    def admission_context(self) -> Context: ...
    def apply(self, paths: Sequence[Path]) -> list[str]: ...
    def delete(self, objects: Sequence[str]) -> list[str]: ...  # "KIND/NAMESPACE/NAME"
    def services(self) -> list[dict[str, Any]]: ...
    def service(self, namespace: str, name: str) -> dict[str, Any]: ...
    def edit_traffic(
        self, namespace: str, name: str, traffic: list[str], tags: list[str], untags: list[str]
    ) -> dict[str, Any]: ...
    def eventing(self) -> list[dict[str, Any]]: ...


class LocalControl:
    """A `knit dev`'s control API at `url` (default: $KNIT_CONTROL_URL or 127.0.0.1:8081)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = control_url(url)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return call(self.url, method, path, body)

    def admission_context(self) -> Context:
        answer = self._call("GET", "/admission")
        return Context(frozenset(tuple(key) for key in answer["known"]), answer["autoscaler"])

    def apply(self, paths: Sequence[Path]) -> list[str]:
        return self._call("POST", "/apply", {"paths": [str(path.resolve()) for path in paths]})["changes"]

    def delete(self, objects: Sequence[str]) -> list[str]:
        return self._call("POST", "/delete", {"objects": list(objects)})["changes"]

    def services(self) -> list[dict[str, Any]]:
        return self._call("GET", "/services")["services"]

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/services/{namespace}/{name}")

    def edit_traffic(
        self, namespace: str, name: str, traffic: list[str], tags: list[str], untags: list[str]
    ) -> dict[str, Any]:
        body = {"traffic": traffic, "tags": tags, "untags": untags}
        return self._call("POST", f"/services/{namespace}/{name}/traffic", body)

    def eventing(self) -> list[dict[str, Any]]:
        return self._call("GET", "/eventing")["resources"]
