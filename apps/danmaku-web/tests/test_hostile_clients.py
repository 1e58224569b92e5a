"""danmaku-web against hostile clients, as deployed: gunicorn's gevent worker, real
WebSockets, real Socket.IO clients, raw sockets and the real broker.

The server runs as behind the knit gateway (DANMAKU_WEB_TRUSTED_PROXIES=1): a client's
address is the last X-Forwarded-For entry, or the TCP peer when there is none. Each test
uses addresses of its own, so buckets and connection counts never carry over.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests
import socketio
import websocket
from kafka import KafkaConsumer

from danmaku_events import events
from knit.host import free_port
from knit.kafka.settings import CONSUMER_GROUP_SETTINGS

pytestmark = pytest.mark.integration

STARTUP_SECONDS = 60  # these two only catch a hang: every wait ends on what it waits for
WAIT_SECONDS = 30
BURST = 3
MAX_CONNECTIONS = 3
MAX_CONTENT_LENGTH = 4096
HARD_LIMIT = 65536  # DANMAKU_WEB_SOCKETIO_MAX_BUFFER_SIZE's default


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of danmaku-web under gunicorn with the shipped config, behind one trusted proxy,
    a burst of 3 refilling once every 100 s (so no test waits long enough to see a refill)
    and 3 connections per address."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DANMAKU_WEB_TRUSTED_PROXIES": "1",
        "DANMAKU_WEB_RATE_LIMIT_BURST": str(BURST),
        "DANMAKU_WEB_RATE_LIMIT_PER_SECOND": "0.01",
        "DANMAKU_WEB_MAX_CONNECTIONS_PER_ADDRESS": str(MAX_CONNECTIONS),
    }
    log = tmp_path_factory.mktemp("danmaku-web-hostile") / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--config", "python:danmaku_web.gunicorn_conf", "danmaku_web.wsgi:app"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or no worker yet
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"danmaku-web did not become ready at {base}; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


class Viewer:
    """A python-socketio client on a real WebSocket, as a browser behind the gateway: its
    address travels in X-Forwarded-For. `refusals` holds what connect_error brought."""

    def __init__(self, base: str, address: str) -> None:
        self.base, self.address = base, address
        self.refusals: list[dict] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("connect_error", self.refusals.append)

    def connect(self) -> Viewer:
        self.client.connect(
            self.base, transports=["websocket"], headers={"X-Forwarded-For": self.address}, wait_timeout=WAIT_SECONDS
        )
        return self

    def call(self, event: str, data: object = None) -> dict:
        return self.client.call(event, data, timeout=WAIT_SECONDS)


@pytest.fixture
def viewers(web: str) -> Iterator[Callable[[str], Viewer]]:
    """Opens a Viewer from an address (not yet connected); disconnects them all after."""
    opened: list[Viewer] = []

    def open_from(address: str) -> Viewer:
        opened.append(Viewer(web, address))
        return opened[-1]

    yield open_from
    for viewer in opened:
        viewer.client.disconnect()


class RawSocket:
    """Engine.IO v4 + Socket.IO v5 spoken by hand over one WebSocket, from a chosen source
    address: for what a library client would never send."""

    def __init__(self, base: str, source: str = "127.0.0.1", headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base)
        peer = socket.create_connection((url.hostname, url.port), timeout=WAIT_SECONDS, source_address=(source, 0))
        self.ws = websocket.WebSocket()
        self.ws.connect(
            f"ws://{url.netloc}/socket.io/?EIO=4&transport=websocket",
            socket=peer,
            header=[f"{name}: {value}" for name, value in (headers or {}).items()],
            timeout=WAIT_SECONDS,
        )
        assert self.receive().startswith("0{")  # Engine.IO OPEN
        self.ws.send("40")  # Socket.IO CONNECT, default namespace
        self.connect_reply = self.receive()
        self.next_ack = 0

    def receive(self) -> str:
        """The next Engine.IO text packet, answering pings on the way."""
        while True:
            message = self.ws.recv()
            if message == "2":
                self.ws.send("3")
                continue
            return message

    def call(self, encoded_event: str) -> dict:
        """Send `42<id><encoded_event>` and return the ack's argument."""
        self.next_ack += 1
        self.ws.send(f"42{self.next_ack}{encoded_event}")
        reply = self.receive()
        prefix = f"43{self.next_ack}"
        assert reply.startswith(prefix), reply
        return json.loads(reply[len(prefix) :])[0]

    def close_code(self) -> int | None:
        """Wait for the server to close the connection: the close code, if it sent one."""
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw_sockets(web: str) -> Iterator[Callable[..., RawSocket]]:
    opened: list[RawSocket] = []

    def open_raw(source: str = "127.0.0.1", headers: dict[str, str] | None = None) -> RawSocket:
        opened.append(RawSocket(web, source, headers))
        return opened[-1]

    yield open_raw
    for raw in opened:
        raw.close()


# The rate limit counts the client address.


def test_reconnecting_does_not_refill_the_addresss_bucket(viewers):
    # given an address that sent BURST - 1 comments on one connection, then closed it
    room = _room()
    first = viewers("203.0.113.1").connect()
    for n in range(BURST - 1):
        assert first.call("send", {"room": room, "text": f"comment {n}"})["ok"]
    first.client.disconnect()
    # when it connects again and sends two more
    again = viewers("203.0.113.1").connect()
    last_of_burst = again.call("send", {"room": room, "text": "last of the burst"})
    extra = again.call("send", {"room": room, "text": "one too many"})
    # then the burst is spent across both connections
    assert last_of_burst["ok"] is True
    assert extra["ok"] is False
    assert extra["error"]["code"] == "rate_limited"
    assert extra["error"]["retry_after"] >= 1
    assert "address 203.0.113.1" in extra["error"]["message"]


def test_http_after_socketio_draws_on_the_same_bucket(web, viewers):
    # given an address that spent its burst over Socket.IO
    room = _room()
    viewer = viewers("203.0.113.2").connect()
    for n in range(BURST):
        assert viewer.call("send", {"room": room, "text": f"comment {n}"})["ok"]
    # when it posts over HTTP through the same proxy
    response = requests.post(
        f"{web}/api/rooms/{room}/danmaku",
        json={"text": "over http now"},
        headers={"X-Forwarded-For": "203.0.113.2"},
        timeout=WAIT_SECONDS,
    )
    # then
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


# The connection cap per address.


def test_a_connection_over_the_cap_is_refused_with_the_reason_while_other_addresses_connect(viewers, raw_sockets):
    # given an address holding its MAX_CONNECTIONS connections
    for _ in range(MAX_CONNECTIONS):
        viewers("203.0.113.3").connect()
    # when it opens one more
    one_more = viewers("203.0.113.3")
    with pytest.raises(socketio.exceptions.ConnectionError):
        one_more.connect()
    # then it is told why, in the contract's shape
    [refusal] = one_more.refusals
    assert refusal["data"]["error"]["code"] == "too_many_connections"
    assert f"at most {MAX_CONNECTIONS} at once" in refusal["message"]
    assert "address 203.0.113.3" in refusal["message"]
    # and another address behind the proxy, or a client connecting from its own, still connects
    assert viewers("198.51.100.3").connect().client.connected
    assert raw_sockets(source="127.0.0.2").connect_reply.startswith("40{")


def test_closing_a_connection_frees_a_place_for_its_address(viewers):
    # given an address at its cap that closes one connection
    held = [viewers("203.0.113.4").connect() for _ in range(MAX_CONNECTIONS)]
    held[0].client.disconnect()
    # when it connects again (the server counts the close down as it notices it)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        viewer = viewers("203.0.113.4")
        try:
            viewer.connect()
            break
        except socketio.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # then
    assert viewer.client.connected


def test_a_refused_raw_connect_names_the_cap(raw_sockets):
    # given a client at the cap, connecting from its own address with no proxy header
    for _ in range(MAX_CONNECTIONS):
        assert raw_sockets(source="127.0.0.4").connect_reply.startswith("40{")
    # when
    reply = raw_sockets(source="127.0.0.4").connect_reply
    # then Socket.IO's CONNECT_ERROR carries the reason
    assert reply.startswith("44")
    assert json.loads(reply[2:])["data"]["error"]["code"] == "too_many_connections"


# Malformed events are answered, and the connection stays.


@pytest.mark.parametrize("event", ["send", "join"])
def test_an_event_without_its_argument_is_refused_in_the_ack(viewers, event):
    viewer = viewers("203.0.113.5").connect()
    ack = viewer.call(event)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_body"
    assert viewer.call("join", {"room": _room()})["ok"]


def test_a_message_over_max_content_length_is_refused_in_the_ack_and_the_connection_keeps_working(viewers):
    # given
    room = _room()
    viewer = viewers("203.0.113.6").connect()
    # when a comment padded to about 5 KB is sent, then a normal one on the same connection
    refused = viewer.call("send", {"room": room, "text": "hi", "nick": "x" * 5000})
    accepted = viewer.call("send", {"room": room, "text": "after the big one"})
    # then
    assert refused["ok"] is False
    assert refused["error"]["code"] == "payload_too_large"
    assert f"more than {MAX_CONTENT_LENGTH} bytes" in refused["error"]["message"]
    assert accepted["ok"] is True


def test_a_message_over_the_hard_limit_closes_its_connection_as_too_big_and_nothing_else(raw_sockets):
    # given a connection and a neighbour
    hog, neighbour = raw_sockets(source="127.0.0.5"), raw_sockets(source="127.0.0.5")
    # when one sends a WebSocket message one byte over the hard limit
    hog.ws.send("4" + "x" * HARD_LIMIT)
    # then the server stops reading it and closes with 1009 (message too big)
    assert hog.close_code() == 1009
    assert neighbour.call('["join",{"room":"still-here"}]')["ok"] is True


def test_event_arguments_nested_5000_deep_are_answered_too_deep(raw_sockets):
    # given
    raw = raw_sockets(source="127.0.0.6")
    # when
    ack = raw.call('["send",' + "[" * 5000 + "]" * 5000 + "]")
    # then
    assert ack["ok"] is False
    assert ack["error"]["code"] == "too_deep"
    assert raw.call('["join",{"room":"still-here"}]')["ok"] is True


def test_an_engineio_message_nested_5000_deep_is_dropped_and_the_connection_kept(raw_sockets):
    # given
    raw = raw_sockets(source="127.0.0.7")
    # when a message that is no Socket.IO packet at all, only deep JSON, comes first
    raw.ws.send("4" + "[" * 5000 + "]" * 5000)
    # then it is ignored: the next event on the connection is answered
    assert raw.call('["join",{"room":"still-here"}]')["ok"] is True


# Chunked request bodies are held to MAX_CONTENT_LENGTH too.


def _post_chunked(web: str, path: str, body: bytes, chunk_size: int = 1000) -> tuple[int, dict]:
    """POST `body` with Transfer-Encoding: chunked over a raw socket; (status, JSON body)."""
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=WAIT_SECONDS) as peer:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        peer.sendall(head.encode())
        for start in range(0, len(body), chunk_size):
            chunk = body[start : start + chunk_size]
            peer.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        peer.sendall(b"0\r\n\r\n")
        reply = peer.makefile("rb")
        status = int(reply.readline().split()[1])
        headers = {}
        while (line := reply.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, json.loads(reply.read(int(headers["content-length"])))


def _texts_published_in(bootstrap: str, room: str, last_id: str) -> list[str]:
    """The texts danmaku-web produced for `room`, in order, up to the comment `last_id`."""
    consumer = KafkaConsumer(
        events.TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"danmaku-web-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        **CONSUMER_GROUP_SETTINGS,
    )
    texts: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == room.encode():
                        texts.append(json.loads(record.value)["text"])
                        if dict(record.headers).get("ce_id") == last_id.encode():
                            return texts
        pytest.fail(f"no record with ce_id {last_id!r} on {events.TOPIC} within 30 s")
    finally:
        consumer.close()


def test_a_chunked_body_over_max_content_length_is_refused_with_413_and_not_published(web, kafka_bootstrap):
    # given a valid comment padded with whitespace past the limit, so a cut copy would parse
    room = _room()
    body = b'{"text": "cut and accepted"}' + b" " * (2 * MAX_CONTENT_LENGTH)
    # when it is sent chunked, then a comment of normal size in the same room
    status, error = _post_chunked(web, f"/api/rooms/{room}/danmaku", body)
    after = requests.post(f"{web}/api/rooms/{room}/danmaku", json={"text": "normal"}, timeout=WAIT_SECONDS)
    # then
    assert status == 413
    assert error["error"]["code"] == "payload_too_large"
    assert f"larger than {MAX_CONTENT_LENGTH} bytes" in error["error"]["message"]
    assert after.status_code == 202
    assert _texts_published_in(kafka_bootstrap, room, after.json()["id"]) == ["normal"]


def test_a_chunked_body_within_max_content_length_is_accepted(web):
    room = _room()
    status, answer = _post_chunked(web, f"/api/rooms/{room}/danmaku", b'{"text": "sent in chunks"}', chunk_size=5)
    assert status == 202
    assert len(answer["id"]) == 32
