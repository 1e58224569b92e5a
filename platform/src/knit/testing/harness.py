"""Real parts for tests and benchmarks: an HTTP server that records the CloudEvents sent
to it, and manifests running on the local runtime, in this process (RunningManifests) or
as `knit dev` (KnitDev)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from knit.resources import load_manifests
from knit.runtimes.local.processes import LogSink
from knit.runtimes.local.runtime import LocalRuntime, Options


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


class RunningManifests:
    """Manifests running on the local runtime in a background thread, for tests that need
    to reach into it (hold a Service at zero, read its status) while they talk to it."""

    def __init__(self, paths: list[Path], kafka_bootstrap: str, log_path: Path, options: Options | None = None) -> None:
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.manifests = load_manifests(paths)
        self.runtime = LocalRuntime(kafka_bootstrap, LogSink(self._log), options or Options(port=0))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _call(self, coroutine: Any, timeout: float = 90) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _in_loop(self, function: Any, *args: Any) -> Any:
        async def call() -> Any:
            return function(*args)

        return self._call(call())

    def start(self) -> None:
        self._thread.start()
        self._call(self.runtime.start())
        self._call(self.runtime.apply(self.manifests))
        self._call(self.runtime.wait_settled(60))

    def apply(self, paths: list[Path]) -> list[str]:
        """Apply more manifests, as `knit apply -f` does; returns a line per change."""
        changes = self._call(self.runtime.apply(load_manifests(paths)))
        self._call(self.runtime.wait_settled(60))
        return changes

    def url(self, service: str) -> str:
        """The Service's cluster-local address: through the gateway, whatever the Host."""
        return self.runtime.address_of("Service", "default", service)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    def describe(self, service: str) -> dict[str, Any]:
        return self._in_loop(self.runtime.describe, "default", service)

    def suspend(self, service: str) -> None:
        """Hold a Service at zero instances, as if its processes were gone."""
        self._in_loop(self.runtime.suspend, service)

    def resume(self, service: str) -> None:
        self._in_loop(self.runtime.resume, service)

    def stop(self) -> None:
        try:
            self._call(self.runtime.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._log.close()


class KnitDev:
    """`knit dev` as a user runs it, in a subprocess; its output is kept in `lines` and in
    a log file, `url` is the URL it told the user to open, `control` its control API.
    The gateway and the control API take free ports unless `args` say otherwise."""

    def __init__(
        self, manifests: Path, cwd: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.log_path = cwd / "knit-dev.log"
        self.lines: list[str] = []
        self.url: str | None = None
        self.control: str | None = None
        self.gateway: str | None = None
        self._ready = threading.Event()
        ports = ("--port", "0", "--control-port", "0")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "knit", "dev", "-f", str(manifests), *ports, *args],
            cwd=cwd, env=env if env is not None else os.environ.copy(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line.rstrip("\n"))
                words = line.split()
                if words[:2] == ["control", "API"]:
                    self.control = words[2]
                elif words[:1] == ["gateway"]:
                    self.gateway = words[1]
                elif line.startswith("Open "):
                    self.url = line.split()[1]
                    self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 90) -> str:
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError(f"knit dev printed no URL within {timeout}s; see {self.log_path}")
        return self.url

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        return self.process.returncode
