"""The processor against hostile clients, as it runs in production: real gunicorn, raw
sockets, and for poison events the real dispatcher reading a real broker.

- A body trickled a byte at a time holds no thread past BODY_TIMEOUT: it gets 408 and
  events from everyone else go on being answered.
- A chunked body over MAX_CONTENT_LENGTH is 413, never cut short and processed.
- JSON nested thousands deep is a 400, so the dispatcher dead-letters it at once instead
  of retrying it for minutes while the partition (every room on it) waits.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kafka import KafkaProducer

from danmaku_events import events
from danmaku_events.comment import parse_comment
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.kafka.admin import ensure_topics
from knit.testing.harness import DispatcherProcess, EventSink, ScriptedSink

pytestmark = pytest.mark.integration

START_TIMEOUT = 60.0  # only catches a hang: the wait ends when gunicorn answers


class Processor:
    """danmaku-processor under gunicorn with the shipped config, on a free port."""

    def __init__(self, sink_url: str, log_path: Path, **env: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "K_SINK": sink_url, **env}
        for name in ("K_OIDC_ISSUER", "K_OIDC_JWKS", "K_AUDIENCE", "K_OIDC_TOKEN_FILE"):
            environment.pop(name, None)  # sender verification is off unless configured
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "python:danmaku_processor.gunicorn_conf",
                 "danmaku_processor.wsgi:app"],
                env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}:\n{log_path.read_text()}")
            try:
                if requests.get(f"{self.url}readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or the worker still booting
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gunicorn was not ready within {START_TIMEOUT}s:\n{log_path.read_text()}")

    def posts_answered(self, at_least: int, timeout: float = 60.0) -> list[str]:
        """The status of every `POST /` in the access log, once it has `at_least` of them
        (a line is written after its answer is sent)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_path.read_text(errors="replace").splitlines()
            statuses = [line.split('" ')[1].split()[0] for line in lines if '"POST / HTTP/1.1"' in line]
            if len(statuses) >= at_least or time.monotonic() > deadline:
                return statuses
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


@pytest.fixture
def processors(tmp_path: Path) -> Iterator:
    started: list[Processor] = []

    def start(sink_url: str, **env: str) -> Processor:
        processor = Processor(sink_url, tmp_path / f"gunicorn-{len(started)}.log", **env)
        started.append(processor)
        return processor

    yield start
    for processor in started:
        processor.stop()


def submitted(comment_id: str, text: str = "nice riff") -> tuple[dict[str, str], bytes]:
    comment = parse_comment({"text": text, "room": "music"}, id=comment_id, ts=1732700000000)
    message = events.to_http(events.submitted(comment))
    return dict(message.headers), message.body


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 20.0) -> tuple[int, dict]:
    """The status and JSON body of the one response on `sock` (read until the server closes
    or the body announced by Content-Length is complete)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"not an HTTP response: {data[:200]!r}"
    return int(head.split()[1]), json.loads(body[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# --- slow clients ----------------------------------------------------------------------------------


class Trickler(threading.Thread):
    """A client that sends an event's headers, then its body one byte at a time, until the
    server answers (or `limit` seconds pass); then it reads the answer and hangs up."""

    def __init__(self, url_port: int, pause: float = 0.2, limit: float = 60.0) -> None:
        super().__init__(daemon=True)
        headers, body = submitted(f"slow-{uuid.uuid4().hex[:8]}")
        self.head = request_head("/", {**headers, "Content-Length": str(len(body))})
        self.body = body
        self.sock = socket.create_connection(("127.0.0.1", url_port), timeout=10)
        self.pause, self.limit = pause, limit
        self.bytes_sent = 0
        self.answer: tuple[int, dict] | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        try:
            self.sock.sendall(self.head)
            # Never more than all but the last byte: this body never completes.
            while self.bytes_sent < len(self.body) - 1 and time.monotonic() < deadline:
                if select.select([self.sock], [], [], self.pause)[0]:
                    break  # the server answered
                self.sock.sendall(self.body[self.bytes_sent : self.bytes_sent + 1])
                self.bytes_sent += 1
            self.answer = read_response(self.sock)
        except OSError as error:
            self.error = error  # closed by the server: also an acceptable end
        finally:
            self.sock.close()


def test_clients_trickling_their_bodies_do_not_stall_the_events_of_everyone_else(processors, event_sink):
    # Given a processor with 2 threads that gives a body at most 1 s
    processor = processors(event_sink.url, GUNICORN_THREADS="2", DANMAKU_PROCESSOR_BODY_TIMEOUT="1")

    # When 4 clients send their bodies a byte every 0.2 s (they would need minutes)
    tricklers = [Trickler(processor.port) for _ in range(4)]
    for trickler in tricklers:
        trickler.start()
    deadline = time.monotonic() + 60  # only catches a hang
    while not all(t.bytes_sent or not t.is_alive() for t in tricklers) and time.monotonic() < deadline:
        time.sleep(0.05)  # each has begun its body: it holds a thread, or waits in gunicorn's queue for one
    # and then an event arrives in one piece
    headers, body = submitted("01JDQ9A1B2C3")
    response = requests.post(processor.url, headers=headers, data=body, timeout=30)

    # Then it is processed, though none of the trickled bodies is complete
    assert response.status_code == 200, response.text
    assert event_sink.ids() == ["01JDQ9A1B2C3"]
    assert all(t.bytes_sent < len(t.body) for t in tricklers)
    # and each trickling client got 408 with the error body
    for trickler in tricklers:
        trickler.join(timeout=30)
        assert trickler.answer is not None, f"no answer: {trickler.error}"
        status, error = trickler.answer
        assert status == 408
        assert error["error"]["code"] == "request_timeout"
        assert "did not arrive within 1s" in error["error"]["message"]
    assert len(event_sink.ids()) == 1  # nothing of the trickled events was processed


def test_a_body_sent_at_once_after_slow_headers_is_still_read(processors, event_sink):
    # The deadline counts from the end of the headers: headers slower than BODY_TIMEOUT
    # followed by the whole body at once are fine.
    processor = processors(event_sink.url, DANMAKU_PROCESSOR_BODY_TIMEOUT="1")
    headers, body = submitted("01JDQ9A1B2C4")
    with socket.create_connection(("127.0.0.1", processor.port), timeout=10) as sock:
        head = request_head("/", {**headers, "Content-Length": str(len(body))})
        sock.sendall(head[:20])
        time.sleep(1.5)
        sock.sendall(head[20:] + body)
        status, answer = read_response(sock)
    assert (status, answer["id"]) == (200, "01JDQ9A1B2C4")


# --- body limits -----------------------------------------------------------------------------------


def send_chunked(port: int, headers: dict[str, str], body: bytes, chunk: int = 8192) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head("/", {**headers, "Transfer-Encoding": "chunked"}))
        try:
            for start in range(0, len(body), chunk):
                piece = body[start : start + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and stopped reading: the answer is what counts
        return read_response(sock)


def test_a_chunked_body_over_the_limit_is_413_and_not_processed(processors, event_sink):
    processor = processors(event_sink.url)
    headers, _ = submitted("01JDQ9A1B2C5")
    # A comment event whose text alone is 100 KB: over the 64 KiB MAX_CONTENT_LENGTH
    body = json.dumps({"id": "01JDQ9A1B2C5", "room": "music", "text": "x" * 100_000}).encode()

    status, error = send_chunked(processor.port, headers, body)

    assert status == 413
    assert error["error"]["code"] == "request_entity_too_large"
    assert "larger than 65536 bytes" in error["error"]["message"]
    assert event_sink.ids() == []


def test_a_chunked_body_within_the_limit_is_processed(processors, event_sink):
    processor = processors(event_sink.url)
    headers, body = submitted("01JDQ9A1B2C6")

    status, answer = send_chunked(processor.port, headers, body, chunk=16)

    assert (status, answer["id"]) == (200, "01JDQ9A1B2C6")
    assert event_sink.ids() == ["01JDQ9A1B2C6"]


def test_a_content_length_over_the_limit_is_413_before_the_body_is_read(processors, event_sink):
    processor = processors(event_sink.url)
    headers, _ = submitted("01JDQ9A1B2C7")
    with socket.create_connection(("127.0.0.1", processor.port), timeout=10) as sock:
        sock.sendall(request_head("/", {**headers, "Content-Length": str(10 * 2**20)}))
        status, error = read_response(sock)
    assert (status, error["error"]["code"]) == (413, "request_entity_too_large")


# --- poison events ---------------------------------------------------------------------------------


@pytest.mark.parametrize("deep", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 50 + b"1" + b"}" * 50])
def test_json_nested_too_deep_is_a_400_naming_the_problem(processors, event_sink, deep):
    processor = processors(event_sink.url)
    headers, _ = submitted("01JDQ9A1B2C8")

    response = requests.post(processor.url, headers=headers, data=deep, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_event"
    assert "levels of arrays and objects are accepted" in response.json()["error"]["message"]
    assert event_sink.ids() == []


def test_a_poison_record_is_dead_lettered_at_once_and_the_next_record_on_its_partition_is_processed(
    kafka_bootstrap, processors, event_sink, tmp_path
):
    # Given a processor sending its results to a sink, and a dispatcher delivering a
    # one-partition topic to it in order, with a dead-letter sink and retries that would
    # hold the partition for minutes if the poison record were answered 5xx
    processor = processors(event_sink.url)
    dead_letters = ScriptedSink()
    topic = f"danmaku-poison-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    config = DispatcherConfig(
        name="danmaku-comments", namespace="default", bootstrap_servers=kafka_bootstrap, topics=(topic,),
        consumer_group=f"group-{uuid.uuid4().hex[:8]}", sink=processor.url, initial_offset="earliest",
        ordering="ordered", delivery=DeliveryPolicy(retry=10, backoff_delay=0.5, timeout=10),
        dead_letter_sink=dead_letters.url,
    )  # fmt: skip
    dispatcher = DispatcherProcess(config, log_path=tmp_path / "dispatcher.log")

    # When a record whose data nests 5000 deep, then a normal comment, are on the partition
    poison = [("ce_specversion", b"1.0"), ("ce_id", b"poison-1"), ("ce_type", events.SUBMITTED.encode()),
              ("ce_source", b"/danmaku-web/rooms/music"), ("content-type", b"application/json")]  # fmt: skip
    comment = parse_comment({"text": "after the poison", "room": "music"}, id="01JDQ9A1B2C9", ts=1732700000000)
    normal = events.to_kafka_record(events.submitted(comment))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(topic, b"[" * 5000 + b"]" * 5000, key=b"music", headers=poison, partition=0).get(30)
        producer.send(topic, normal.value, key=normal.key, headers=list(normal.headers.items()), partition=0).get(30)
    finally:
        producer.close(10)
    dispatcher.start()
    try:
        # Then the normal comment's verdict reaches the sink
        (result,) = event_sink.wait_for(1, timeout=30)
        assert (result.id, result.headers["ce-type"]) == ("01JDQ9A1B2C9", events.PUBLISHED)
        # and the poison record went to the dead-letter sink with the processor's 400, tried once
        (dead,) = dead_letters.wait_for(1, timeout=30)
        assert dead.id == "poison-1"
        assert dead.headers["ce-knativeerrorcode"] == "400"
        assert processor.posts_answered(at_least=2) == ["400", "200"]  # the poison one was tried once
    finally:
        dispatcher.stop(timeout=10)
        dead_letters.close()
