"""pytest fixtures for code that runs on knit: a real Kafka broker for the test session
and a real HTTP server that records the CloudEvents sent to it.

Enable with `pytest_plugins = ["knit.testing"]` in a conftest.py. The broker is the
embedded one unless KAFKA_BOOTSTRAP_SERVERS names a cluster (e.g. a real Apache Kafka).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, wait_until_reachable


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a running Kafka broker, for the whole session."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        wait_until_reachable(external, time.monotonic() + 10)
        yield external
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("kafka") / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@dataclass
class ReceivedEvent:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")


class EventSink:
    """A real HTTP server on 127.0.0.1 that records the CloudEvents POSTed to it.

    `answers` is a list of status codes to give, in order, before answering 200 for good,
    so a test can make the sink fail a few times and then recover.
    """

    def __init__(self, port: int = 0) -> None:
        self.events: list[ReceivedEvent] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    status = sink.answers.pop(0) if sink.answers else 200
                    if status < 300:
                        sink.events.append(ReceivedEvent({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/"

    def ids(self) -> list[str]:
        with self._lock:
            return [event.id for event in self.events]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} events within {timeout}s, got {len(self.events)}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()
