"""Talking to a running `knit dev` over its control API (JSON on 127.0.0.1), with the token
`knit dev` left in the user's token file (or KNIT_CONTROL_TOKEN)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

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
