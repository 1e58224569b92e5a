"""knit's eventing against hostile input: the Broker ingress and the dispatcher's record
conversion answer anything with an event or their own error (a 400 naming the problem, a
skipped record), never a crash; bodies are bounded however they are sent."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from knit.admission import load_manifests
from knit.control.desired import dispatcher_config
from knit.eventing.conversion import InvalidRecord, Record, Request, to_request
from knit.eventing.ingress import CONFIG_ENV, MAX_BODY, IngressConfig, InvalidEvent, parse_event
from knit.host import free_port
from knit.kafka.admin import ensure_topics
from knit.testing.harness import DispatcherProcess, ScriptedSink

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BINARY = {"ce-specversion": "1.0", "ce-id": "e-1", "ce-type": "com.shop.order.created", "ce-source": "/shop"}
DEEP = b"[" * 5000 + b"]" * 5000


# --- JSON nested thousands deep ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({**BINARY, "Content-Type": "application/json"}, DEEP),
        ({**BINARY, "Content-Type": "application/json"}, b"[" * 65 + b"]" * 65),
        ({"Content-Type": "application/cloudevents+json"}, DEEP),
        (
            {"Content-Type": "application/cloudevents+json"},
            b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data": ' + DEEP + b"}",
        ),
    ],
)
def test_the_ingress_refuses_json_nested_too_deeply_naming_the_problem(headers, body):
    with pytest.raises(InvalidEvent, match="levels of arrays and objects are accepted"):
        parse_event(headers, body)


def test_the_ingress_takes_json_data_as_deep_as_the_limit():
    event = parse_event({**BINARY, "Content-Type": "application/json"}, b"[" * 64 + b"]" * 64)
    assert event.get_id() == "e-1"


def record(value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> Record:
    return Record(topic="orders", partition=0, offset=7, timestamp_ms=1_700_000_000_000, key=None, value=value,
                  headers=headers)  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [DEEP, b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data": ' + DEEP + b"}"],
)
def test_a_structured_record_nested_too_deeply_is_an_invalid_record(value):
    with pytest.raises(InvalidRecord, match=r"orders\[0\]@7 .* levels of arrays and objects are accepted"):
        to_request(record(value, (("content-type", b"application/cloudevents+json"),)), "default", "feed")


def test_a_binary_record_nested_deeply_passes_through_as_bytes_for_the_sink_to_judge():
    headers = tuple((f"ce_{name.removeprefix('ce-')}", value.encode()) for name, value in BINARY.items())
    request = to_request(record(DEEP, (*headers, ("content-type", b"application/json"))), "default", "feed")
    assert request.body == DEEP


# --- properties ----------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
)
ATTRIBUTES = ["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject", "partitionkey"]
VALUES = ["1.0", "0.3", "", "e-1", "/s", "2024-05-01T12:00:00Z", "2024-13-01", "application/json", "%zz"]
envelopes = st.dictionaries(
    st.sampled_from([*ATTRIBUTES, "data", "data_base64", "Bad", ""]) | st.text(max_size=6),
    st.sampled_from(VALUES) | json_values,
    max_size=10,
)


@st.composite
def nested(draw):
    depth = draw(st.integers(0, 3000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"data":[', "]}")]))
    return (opening * depth + "1" + closing * draw(st.integers(0, depth))).encode()


# A valid event's attributes with a few of them (or data) replaced by anything.
structured_events = st.dictionaries(
    st.sampled_from([*ATTRIBUTES, "data", "data_base64", "ext", "Ext", "ext\n"]),
    st.sampled_from(VALUES) | json_values,
    max_size=3,
).map(lambda e: json.dumps({"specversion": "1.0", "id": "1", "type": "t", "source": "/s", **e}).encode())
bodies = (
    st.binary(max_size=200)
    | structured_events
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda e: json.dumps(e).encode())
    | nested()
)
header_names = st.sampled_from([*(f"ce-{name}" for name in ATTRIBUTES), "ce-", "ce-data", "Content-Type"]) | st.text(
    max_size=10
)
header_values = st.sampled_from(
    [*VALUES, "application/cloudevents+json", "text/plain", "application/octet-stream"]
) | st.text(max_size=20)


@SETTINGS
@given(body=structured_events)
def test_the_ingress_parses_any_structured_event_into_an_event_or_an_invalid_event(body):
    try:
        event = parse_event({"Content-Type": "application/cloudevents+json"}, body)
    except InvalidEvent:
        return
    assert all(isinstance(value, str | int | None) for name, value in event.get_attributes().items() if name != "time")


@SETTINGS
@given(headers=st.dictionaries(header_names, header_values, max_size=8), body=bodies)
def test_the_ingress_parses_any_request_into_an_event_or_an_invalid_event(headers, body):
    try:
        event = parse_event(headers, body)
    except InvalidEvent:
        return
    assert all(event.get_attributes()[name] for name in ("specversion", "id", "source", "type"))


kafka_headers = st.lists(
    st.tuples(
        st.sampled_from([*(f"ce_{name}" for name in ATTRIBUTES), "content-type", "ce_", "x-trace"])
        | st.text(max_size=8),
        st.sampled_from([v.encode() for v in VALUES] + [b"application/cloudevents+json", b""]) | st.binary(max_size=12),
    ),
    max_size=8,
).map(tuple)


@SETTINGS
@given(value=st.none() | bodies, headers=kafka_headers)
def test_any_record_converts_to_a_request_or_an_invalid_record(value, headers):
    try:
        request = to_request(record(value, headers), "default", "feed")
    except InvalidRecord:
        return
    assert isinstance(request, Request)
    assert all(isinstance(name, str) and isinstance(text, str) for name, text in request.headers.items())


# --- the Broker ingress as a process: body limits ----------------------------------------------------


class Ingress:
    """`python -m knit.eventing.ingress` serving one Broker per topic, as the local runtime runs it."""

    def __init__(self, kafka_bootstrap: str, brokers: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        config = IngressConfig(bootstrap_servers=kafka_bootstrap, brokers=brokers)
        env = {**os.environ, CONFIG_ENV: config.to_json(), "PORT": str(self.port), "HOST": "127.0.0.1"}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knit.eventing.ingress"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, f"the ingress exited:\n{log_path.read_text()}"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the ingress was not ready within 30s:\n{log_path.read_text()}"
            time.sleep(0.1)

    def url(self, broker: str) -> str:
        return f"http://127.0.0.1:{self.port}/{broker}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture(scope="module")
def ingress(kafka_bootstrap, tmp_path_factory):
    topics = {name: f"hostile-{name}-{uuid.uuid4().hex[:8]}" for name in ("chunked", "deep")}
    ensure_topics(kafka_bootstrap, topics.values(), partitions=1)
    running = Ingress(
        kafka_bootstrap,
        {f"default/{n}": t for n, t in topics.items()},
        tmp_path_factory.mktemp("ingress") / "ingress.log",
    )
    try:
        yield running, topics
    finally:
        running.stop()


def stored_ids(kafka_bootstrap: str, topic: str, last: str, timeout: float = 20.0) -> list[str]:
    """The ids of the events in the topic's partition 0, read until the one with id `last`."""
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        while last not in ids:
            assert time.monotonic() < deadline, f"{last} not in {topic} within {timeout}s; found {ids}"
            for records in consumer.poll(timeout_ms=200).values():
                ids.extend(dict(r.headers).get("ce_id", b"").decode() for r in records)
        return ids
    finally:
        consumer.close()


def send(url: str, event_id: str) -> requests.Response:
    headers = {**BINARY, "ce-id": event_id, "Content-Type": "application/json"}
    return requests.post(url, headers=headers, data=b'{"n": 1}', timeout=10)


@pytest.mark.integration
def test_a_chunked_event_over_the_ingress_limit_is_413_and_not_stored(ingress, kafka_bootstrap):
    running, topics = ingress
    body = b'"' + b"x" * (MAX_BODY + 64 * 1024) + b'"'
    with socket.create_connection(("127.0.0.1", running.port), timeout=20) as sock:
        headers = {**BINARY, "ce-id": "too-big", "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        head = ["POST /default/chunked HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for start in range(0, len(body), 64 * 1024):
                piece = body[start : start + 64 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the ingress answered and stopped reading
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    error = json.loads(content)["error"]
    assert error["code"] == "request_entity_too_large"
    assert f"larger than {MAX_BODY} bytes" in error["message"]
    # nothing of it was stored: the next event is the first in the topic
    assert send(running.url("default/chunked"), "after-chunked").status_code == 202
    assert stored_ids(kafka_bootstrap, topics["chunked"], "after-chunked") == ["after-chunked"]


@pytest.mark.integration
def test_json_nested_too_deeply_is_400_at_the_ingress_and_not_stored(ingress, kafka_bootstrap):
    running, topics = ingress
    headers = {**BINARY, "ce-id": "deep", "Content-Type": "application/json"}

    response = requests.post(running.url("default/deep"), headers=headers, data=DEEP, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_event"
    assert "levels of arrays and objects are accepted" in response.json()["error"]["message"]
    assert send(running.url("default/deep"), "after-deep").status_code == 202
    assert stored_ids(kafka_bootstrap, topics["deep"], "after-deep") == ["after-deep"]


# --- the per-attempt delivery timeout, set on a KafkaSource ---------------------------------------------


class SilentSink:
    """Accepts connections and reads requests, never answers; counts the requests."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/"
        self.requests = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            self._open.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        seen = b""
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            seen += data
            with self._lock:
                self.requests += seen.count(b"POST ")
            seen = seen[seen.rfind(b"POST ") + 1 :] if b"POST " in seen else seen[-4:]

    def close(self) -> None:
        self.server.close()
        for connection in self._open:
            connection.close()


KAFKA_SOURCE = """
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {{name: slow-sink-feed}}
spec:
  bootstrapServers: [kafka.example:9092]
  topics: [{topic}]
  initialOffset: earliest
  sink: {{uri: "{sink}"}}
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.05S
    timeout: PT0.3S
    deadLetterSink: {{uri: "{dead_letters}"}}
"""


@pytest.mark.integration
def test_a_sink_that_never_answers_is_given_up_on_after_the_sources_timeout_and_retried(kafka_bootstrap, tmp_path):
    # Given a KafkaSource whose delivery gives each attempt 0.3 s and retries twice, to a
    # sink that takes requests and never answers
    sink, dead_letters = SilentSink(), ScriptedSink()
    topic = f"silent-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    (tmp_path / "source.yaml").write_text(
        KAFKA_SOURCE.format(topic=topic, sink=sink.url, dead_letters=dead_letters.url)
    )
    (source,) = load_manifests([tmp_path / "source.yaml"]).kafka_sources
    config = dispatcher_config(source, kafka_bootstrap, lambda *_: "http://unused")
    assert config.delivery.timeout == 0.3
    dispatcher = DispatcherProcess(config, log_path=tmp_path / "dispatcher.log").start()
    try:
        # When one record is produced
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(topic, b'{"n": 1}', partition=0).get(30)
        producer.close(10)

        # Then each attempt is abandoned at the timeout and the event dead-lettered after 3 attempts
        (dead,) = dead_letters.wait_for(1, timeout=30)
        assert dead.headers["ce-knativeerrorcode"] == "500"
        assert base64.b64decode(dead.headers["ce-knativeerrordata"]).startswith(b"dispatch error: ")
        assert sink.requests == 3
    finally:
        dispatcher.stop(timeout=10)
        sink.close()
        dead_letters.close()


def test_the_ingress_makes_up_no_time_for_an_event_without_one():
    event = parse_event({**BINARY, "Content-Type": "application/json"}, b"{}")
    assert "time" not in event.get_attributes()
    timed = parse_event({**BINARY, "ce-time": "2024-05-01T12:00:00Z", "Content-Type": "application/json"}, b"{}")
    assert timed.get_time().isoformat() == "2024-05-01T12:00:00+00:00"
