"""Fixtures for the processor's tests: a real HTTP server standing in for K_SINK."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudevents.core.v1.event import CloudEvent

from danmaku_events import events


class CaptureSink:
    """Records every request it gets and answers `status` after `delay` seconds."""

    def __init__(self) -> None:
        self.status = 202
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append((dict(self.headers), body))
                time.sleep(sink.delay)
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output to failures

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"

    def events(self) -> list[CloudEvent]:
        return [events.from_http(headers, body) for headers, body in self.requests]


@pytest.fixture
def sink() -> Iterator[CaptureSink]:
    capture = CaptureSink()
    # A short poll interval keeps shutdown (once per test) fast.
    thread = threading.Thread(target=capture.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        capture.server.shutdown()
        capture.server.server_close()


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
