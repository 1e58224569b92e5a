"""Sending CloudEvents over HTTP with Knative's delivery rules: retries with backoff on
the answers worth retrying, and the dead-letter form of an event that was given up on.
A delivery to a sink with an audience carries `Authorization: Bearer <token>`, the token
read from the file the platform keeps fresh (see knit.eventing.identity)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from knit.eventing.delivery import DeliveryPolicy, is_retryable, is_success

ERROR_DEST, ERROR_CODE, ERROR_DATA = "knativeerrordest", "knativeerrorcode", "knativeerrordata"
ERROR_DATA_MAX_LENGTH = 1024  # Knative's KnativeErrorDataExtensionMaxLength, of the base64 text

log = logging.getLogger("knit.sender")


@dataclass(frozen=True)
class Outcome:
    """The last answer to a delivery: status None means no answer (network error, timeout)."""

    url: str
    status: int | None
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    reason: str = ""
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and is_success(self.status)

    def reply(self) -> tuple[dict[str, str], bytes] | None:
        """The CloudEvent a subscriber answered with (binary or structured), if any."""
        headers = {name.lower(): value for name, value in (self.headers or {}).items()}
        structured = headers.get("content-type", "").startswith("application/cloudevents")
        if not self.ok or not ("ce-specversion" in headers or structured):
            return None
        keep = {name: value for name, value in headers.items() if name.startswith("ce-") or name == "content-type"}
        return keep, self.body


def error_extensions(outcome: Outcome) -> dict[str, str]:
    """What a dead-letter sink learns of the failure: Knative's knativeerror* extensions.

    A delivery that got no answer counts as code 500 with "dispatch error: ..." as its
    body, as Knative's dispatcher reports it; the body is base64, cut to 1024 characters.
    """
    status = outcome.status if outcome.status is not None else 500
    body = outcome.body if outcome.status is not None else f"dispatch error: {outcome.reason}".encode()
    printable = bytes(b for b in body if b >= 0x20 or b in b"\t\n\r")
    data = base64.b64encode(printable).decode()[:ERROR_DATA_MAX_LENGTH]
    extensions = {ERROR_DEST: outcome.url, ERROR_CODE: str(status)}
    if data:
        extensions[ERROR_DATA] = data
    return extensions


class TokenFile:
    """A sender's token for one audience, in a file the platform replaces before the token
    expires (a projected ServiceAccount token on Kubernetes): read again whenever the file
    changed, so each send presents the current token for the price of a stat()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._token = ""

    def read(self) -> str:
        """The current token; OSError or ValueError when the file is missing or empty."""
        status = os.stat(self.path)
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
        if version != self._version:
            token = Path(self.path).read_text().strip()
            if not token:
                raise ValueError(f"the token file {self.path} is empty")
            self._token, self._version = token, version
        return self._token

    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read()}"}


def token_file(path: str | None) -> TokenFile | None:
    return TokenFile(path) if path else None


class Sender:
    def __init__(self, session: aiohttp.ClientSession, policy: DeliveryPolicy) -> None:
        self.session = session
        self.policy = policy

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, token: TokenFile | None = None) -> Outcome:
        if token is not None:
            try:
                headers = {**headers, **token.authorization()}
            except (OSError, ValueError) as error:  # retried: the platform may be writing it
                return Outcome(url, None, reason=f"no token for {url} ({error})")
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.policy.timeout)
            ) as response:
                content = await response.read()
                return Outcome(
                    url, response.status, content, dict(response.headers), f"{url} answered {response.status}"
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return Outcome(url, None, reason=f"{url} unreachable ({type(error).__name__}: {error})")

    async def deliver(
        self, url: str, headers: Mapping[str, str], body: bytes, what: str, token: TokenFile | None = None
    ) -> Outcome:
        """POST until it succeeds, the answer is not worth retrying, or the retries run out;
        with `token`, each attempt presents the token current at that moment."""
        retries = 0
        while True:
            outcome = await self.post(url, headers, body, token)
            if outcome.ok or not (is_retryable(outcome.status) and self.policy.may_retry(retries)):
                return Outcome(outcome.url, outcome.status, outcome.body, outcome.headers, outcome.reason, retries)
            retries += 1
            delay = self.policy.delay_before_retry(retries)
            log.warning("%s: %s; retry %d/%d in %.2fs", what, outcome.reason, retries, self.policy.retry, delay)
            await asyncio.sleep(delay)
