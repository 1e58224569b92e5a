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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from knit.admission import load_manifests
from knit.client import call as control_call
from knit.runtimes.local.processes import LogSink
from knit.runtimes.local.runtime import LocalRuntime, Options

# How long the wait_* helpers wait by default: long enough that only a hang reaches it, on a loaded
# machine too (make test-stressed). Speed is bench/'s business, not the tests'.
HANG = 60.0


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

    def wait_for(self, count: int, timeout: float = HANG) -> list[ReceivedEvent]:
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
        self._settle()

    def apply(self, paths: list[Path]) -> list[str]:
        """Apply more manifests, as `knit apply -f` does; returns a line per change."""
        changes = self._call(self.runtime.apply(load_manifests(paths, self.runtime.admission_context())))
        self._settle()
        return changes

    def delete(self, identities: list[tuple[str, str, str]]) -> list[str]:
        """Delete applied objects, (kind, namespace, name) each, as `knit delete` does."""
        return self._call(self.runtime.delete(identities))

    def eventing(self) -> list[dict[str, Any]]:
        """Brokers, Triggers and sources with their Ready condition, as `knit eventing list` shows them."""
        return self._in_loop(self.runtime.eventing)

    def _settle(self) -> None:
        """Every latest Revision ready or failed. An instance that is not ready in ready_timeout
        fails its Revision, so only a hang takes longer; then TimeoutError names the Revisions."""
        timeout = self.runtime.options.ready_timeout + 30
        self._call(self.runtime.wait_settled(timeout), timeout + 30)

    def url(self, service: str) -> str:
        """The Service's cluster-local address: through the gateway, whatever the Host."""
        return self.runtime.address_of("Service", "default", service)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    def describe(self, service: str) -> dict[str, Any]:
        return self._in_loop(self.runtime.describe, "default", service)

    def haproxy_stats(self) -> str:
        """HAProxy's `show stat` (CSV), with the HAProxy data plane."""
        assert self.runtime.data_plane is not None, "not running with --data-plane haproxy"
        return self._call(self.runtime.data_plane.proxy.command("show stat"))

    def through_activator(self, revision: str) -> bool:
        """With the HAProxy data plane, whether the Revision's requests go through the activator now."""
        assert self.runtime.data_plane is not None, "not running with --data-plane haproxy"
        return self._in_loop(lambda: self.runtime.data_plane.revisions[revision].through_activator)

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
        self, manifests: Path | list[Path], cwd: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.log_path = cwd / "knit-dev.log"
        self.lines: list[str] = []
        self.url: str | None = None
        self.control: str | None = None
        self.gateway: str | None = None
        self.dashboard: str | None = None
        self._ready = threading.Event()
        ports = ("--port", "0", "--control-port", "0")
        paths = manifests if isinstance(manifests, list) else [manifests]
        files = [arg for path in paths for arg in ("-f", str(path))]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "knit", "dev", *files, *ports, *args],
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
                elif words[:1] == ["dashboard"]:
                    self.dashboard = words[1]
                elif line.startswith("Open "):
                    self.url = line.split()[1]
                    self._ready.set()
                elif line.startswith("No Service is public"):  # knit.cli's banner, no URL to open
                    self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 90) -> str:
        """The URL to open; the gateway's when no Service is public."""
        if not self._ready.wait(timeout) or (self.url or self.gateway) is None:
            self.stop()
            raise AssertionError(f"knit dev was not ready within {timeout}s; see {self.log_path}")
        return self.url or self.gateway

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The control API's JSON answer, asked as the knit commands ask: with the token
        `knit dev` wrote to the user's token file. Raises knit.client.ControlError."""
        assert self.control is not None, "knit dev is not ready"
        return control_call(self.control, method, path, body)

    def describe(self, service: str, namespace: str = "default") -> dict[str, Any]:
        """The Service as `knit service describe` sees it, from the control API."""
        return self.call("GET", f"/services/{namespace}/{service}")

    def address(self, service: str) -> str:
        """The Service's cluster-local address (through the gateway); Python clients can use
        it where they cannot resolve the *.localhost URL."""
        return self.describe(service)["status"]["address"]["url"]

    def __enter__(self) -> KnitDev:
        self.wait_ready()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

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


# --- eventing: a scripted sink that traces concurrency, and dispatcher processes ----------------


@dataclass(frozen=True)
class Answer:
    """What a ScriptedSink answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Attempt:
    """One request a ScriptedSink got, whatever it answered."""

    event: ReceivedEvent
    status: int
    lane: str | None


def partition_lane(event: ReceivedEvent) -> str | None:
    """The partition of an event converted from a plain Kafka record (id `partition:<p>/offset:<o>`)."""
    where = _record_position(event.id)
    return None if where is None else str(where[0])


def _record_position(event_id: str) -> tuple[int, int] | None:
    partition, _, offset = event_id.partition("/")
    if not (partition.startswith("partition:") and offset.startswith("offset:")):
        return None
    try:
        return int(partition.removeprefix("partition:")), int(offset.removeprefix("offset:"))
    except ValueError:
        return None


class ScriptedSink:
    """A real HTTP server on 127.0.0.1 for eventing tests: answers each request as `respond`
    says (200 by default), after `delay` seconds, and keeps

    - `events`: the requests it answered 2xx (accepted deliveries), in arrival order;
    - `attempts`: every request, with the status it was given;
    - the largest number of requests in progress at once, overall (`max_in_flight`) and per
      lane (`max_in_flight_by_lane`); a request's lane is `lane_of(event)`, by default the
      partition of a plain record's event id, so ordered delivery can be checked.

    A request stops counting as in progress before its answer is written, so a sender that
    waits for the answer can never be seen overlapping with itself.
    `respond(event, n)` gets the event and the request's 1-based number across the sink.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        respond: Any = None,
        delay: float = 0.0,
        lane_of: Any = partition_lane,
    ) -> None:
        self.respond = respond
        self.delay = delay
        self.lane_of = lane_of
        self.events: list[ReceivedEvent] = []
        self.attempts: list[Attempt] = []
        self.max_in_flight = 0
        self.max_in_flight_by_lane: dict[str, int] = {}
        self._in_flight = 0
        self._in_flight_by_lane: dict[str, int] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = ReceivedEvent({k.lower(): v for k, v in self.headers.items()}, body)
                answer = sink._handle(event)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default 5 drops connects when 100 deliveries start at once

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A sender that gave up (timeout, killed) closed the connection before the answer.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _handle(self, event: ReceivedEvent) -> Answer:
        lane = self.lane_of(event)
        with self._lock:
            number = len(self.attempts) + 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if lane is not None:
                now = self._in_flight_by_lane[lane] = self._in_flight_by_lane.get(lane, 0) + 1
                self.max_in_flight_by_lane[lane] = max(self.max_in_flight_by_lane.get(lane, 0), now)
        try:
            if self.delay:
                time.sleep(self.delay)
            answer = self.respond(event, number) if self.respond else Answer()
            if isinstance(answer, int):
                answer = Answer(answer)
        finally:
            with self._lock:
                self._in_flight -= 1
                if lane is not None:
                    self._in_flight_by_lane[lane] -= 1
        with self._lock:
            self.attempts.append(Attempt(event, answer.status, lane))
            if 200 <= answer.status < 300:
                self.events.append(event)
        return answer

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def ids(self) -> list[str]:
        """The ids of the accepted deliveries, in arrival order, duplicates included."""
        with self._lock:
            return [event.id for event in self.events]

    def attempts_for(self, event_id: str) -> list[int]:
        """The statuses answered to every delivery attempt of one event."""
        with self._lock:
            return [attempt.status for attempt in self.attempts if attempt.event.id == event_id]

    def offsets_by_partition(self) -> dict[int, list[int]]:
        """Accepted plain-record events: partition -> offsets in arrival order."""
        order: dict[int, list[int]] = {}
        for event_id in self.ids():
            where = _record_position(event_id)
            if where is not None:
                order.setdefault(where[0], []).append(where[1])
        return order

    def wait_for_ids(self, ids: Any, timeout: float = HANG) -> list[ReceivedEvent]:
        """Wait until every id in `ids` was accepted at least once; the accepted events so far."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                missing = wanted - {event.id for event in self.events}
                if not missing:
                    return list(self.events)
            if time.monotonic() > deadline:
                example = ", ".join(sorted(missing)[:5])
                raise AssertionError(f"{len(missing)} of {len(wanted)} events not delivered in {timeout}s: {example}")
            time.sleep(0.02)

    def wait_for(self, count: int, timeout: float = HANG) -> list[ReceivedEvent]:
        """Wait until `count` deliveries were accepted (duplicates count)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.events) >= count:
                    return list(self.events)
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} accepted deliveries within {timeout}s, got {len(self.events)}")
            time.sleep(0.01)

    def close(self) -> None:
        """Stop listening: the port is closed (connections are refused) until a new sink takes it."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def duplicates(ids: list[str]) -> int:
    """How many deliveries repeated an event already delivered."""
    return len(ids) - len(set(ids))


class DispatcherProcess:
    """A KafkaSource (or Trigger) dispatcher as a real process, as the local runtime runs it:
    `python -m knit.eventing.dispatcher` with its DispatcherConfig as JSON in KNIT_KAFKASOURCE
    and PORT for /healthz and /readyz (plus `env`). Its output goes to `log_path` (or is discarded)."""

    def __init__(
        self,
        config: Any,
        log_path: Path | None = None,
        port: int = 0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        from knit.eventing.dispatcher import CONFIG_ENV
        from knit.host import free_port

        self.config = config
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._env = {**os.environ, **(env or {}), CONFIG_ENV: config.to_json(), "PORT": str(self.port)}
        self._python = python

    def start(self, *, wait_ready: bool = True, timeout: float = HANG, args: tuple[str, ...] = ()) -> DispatcherProcess:
        """Start the process; `args` go between the interpreter and `-m` (e.g. cProfile's)."""
        from knit.host import die_with_parent

        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        output = open(self.log_path, "ab") if self.log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [self._python, *args, "-m", "knit.eventing.dispatcher"],
                env=self._env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def readyz(self) -> tuple[int, dict[str, Any]] | None:
        """/readyz's status and JSON body, or None while nothing listens."""
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = HANG) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.readyz()
            if answer is not None and answer[0] == 200:
                return
            if not self.alive():
                code = self.process and self.process.returncode
                raise AssertionError(f"the dispatcher exited while starting (code {code}){self._log_hint()}")
            time.sleep(0.05)
        last = self.readyz()
        raise AssertionError(f"the dispatcher was not ready within {timeout}s (last /readyz: {last}){self._log_hint()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no final commit, as when a machine dies."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (drain and commit), then SIGKILL after `timeout`; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _log_hint(self) -> str:
        tail = self.log_tail()
        return f"; its log ends with:\n{tail}" if tail else ""
