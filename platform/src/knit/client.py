"""Talking to a running `knit dev` over its control API (JSON on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from knit.runtimes.local.control import CONTROL_URL_ENV, DEFAULT_PORT

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
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            problems = json.loads(error.read()).get("problems") or [str(error)]
        except ValueError:
            problems = [f"{base}{path} answered {error.code}"]
        raise ControlError(problems) from None
    except (urllib.error.URLError, OSError) as error:
        raise ControlError(
            [
                f"no knit dev answered at {base} ({getattr(error, 'reason', error)}); start one with "
                f"`knit dev -f <manifests>`, or point {CONTROL_URL_ENV} / --control at it"
            ]
        ) from None
