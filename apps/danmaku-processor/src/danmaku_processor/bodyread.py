"""Request bodies, read whole before the app sees them: within a deadline and a size limit.

gunicorn's gthread worker gives each request one of its threads (8 by default), and the
thread blocks while the body arrives. A few clients sending their bodies a byte at a time
would hold every thread of an instance and stall every room whose events it serves. The
gateway buffers bodies, but the processor's port is reachable by anything on the machine,
so `BodyReader` (WSGI middleware) reads each body itself, before the app runs:

- a body not complete within `timeout` seconds of the request's headers: 408;
- a body longer than `max_bytes`, announced (Content-Length) or not (chunked): 413;

both with the error body, and the connection is closed rather than drained.

The deadline is for the whole body, not per read: gunicorn's body reader calls recv()
until it has what it was asked for, so a per-read socket timeout never fires for a client
that sends a byte every few seconds. A watchdog thread (one per process) shuts the
reading side of the socket when a deadline passes, which ends the blocked recv() at once.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(order=True)
class _Deadline:
    at: float  # time.monotonic()
    sock: socket.socket = field(compare=False)
    passed: bool = field(default=False, compare=False)
    released: bool = field(default=False, compare=False)


class Watchdog:
    """Shuts the reading side of a socket whose deadline passed; one thread, started on
    first use in each process (a processor forks from a preloaded template process, which
    must not have threads, and a thread does not survive a fork)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._deadlines: list[_Deadline] = []
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> _Deadline:
        deadline = _Deadline(time.monotonic() + seconds, sock)
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="body-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._deadlines, deadline)
            if self._deadlines[0] is deadline:
                self._condition.notify()
        return deadline

    def release(self, deadline: _Deadline) -> bool:
        """Stop watching; whether the deadline had passed (and the socket was shut for reading)."""
        with self._condition:
            deadline.released = True
            return deadline.passed

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._deadlines and self._deadlines[0].released:
                    heapq.heappop(self._deadlines)
                if not self._deadlines:
                    self._condition.wait()
                    continue
                wait = self._deadlines[0].at - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                expired = heapq.heappop(self._deadlines)
                expired.passed = True
                with contextlib.suppress(OSError):  # the client is gone already
                    expired.sock.shutdown(socket.SHUT_RD)


WATCHDOG = Watchdog()


class BodyReader:
    """WSGI middleware: the app gets the whole body in memory, or the client an error."""

    def __init__(
        self,
        app: WSGIApp,
        timeout: Any,
        max_bytes: int | None,
        setting: str = "BODY_TIMEOUT",
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"{setting} must be a positive number of seconds, e.g. 5; got {timeout!r}")
        self.app = app
        self.timeout = float(timeout)
        self.max_bytes = max_bytes
        self.watchdog = watchdog

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # gunicorn refuses a malformed Content-Length before the app is called
        if not chunked and length <= 0:
            return self.app(environ, start_response)
        if self.max_bytes is not None and length > self.max_bytes:
            return _refuse(environ, start_response, 413, "request_entity_too_large", self._too_large())
        body = self._read(environ, None if chunked else length)
        if body is None:
            message = f"the request body did not arrive within {self.timeout:g}s of its headers; send it at once"
            return _refuse(environ, start_response, 408, "request_timeout", message)
        if self.max_bytes is not None and len(body) > self.max_bytes:
            return _refuse(environ, start_response, 413, "request_entity_too_large", self._too_large())
        if not chunked and len(body) < length:
            message = f"the request body ended after {len(body)} of the {length} bytes its Content-Length announced"
            return _refuse(environ, start_response, 400, "bad_request", message)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # what the app reads is no longer chunked
        return self.app(environ, start_response)

    def _read(self, environ: dict[str, Any], length: int | None) -> bytes | None:
        """The body (a chunked one up to one byte past the limit), or None when the deadline passed."""
        stream = environ["wsgi.input"]
        wanted = length if length is not None else (self.max_bytes + 1 if self.max_bytes is not None else -1)
        sock = environ.get("gunicorn.socket")
        if sock is None:  # not under gunicorn (the test client): the body is in memory already
            return stream.read(wanted)
        deadline = self.watchdog.watch(sock, self.timeout)
        try:
            body = stream.read(wanted)
        except Exception:
            # Once the socket is shut for reading, gunicorn's chunked reader finds the body
            # cut short (NoMoreData, or a chunk missing its end); anything else is its own.
            if self.watchdog.release(deadline):
                return None
            raise
        if self.watchdog.release(deadline):
            return None
        return body

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes; a comment event is well under 1 KiB"


def _refuse(
    environ: dict[str, Any], start_response: Callable[..., Any], status: int, code: str, message: str
) -> Iterable[bytes]:
    """An error answer (the codes are werkzeug's, as the app's own errors have them)."""
    # gunicorn would otherwise drain what is left of the body before the next request on
    # the connection (for up to 5 s): marked failed, the connection is closed instead.
    stream = environ.get("wsgi.input")
    if hasattr(stream, "failed"):
        stream.failed = True
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
