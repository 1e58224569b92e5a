"""danmaku-web as deployed: gunicorn's gevent worker, real WebSockets, the real broker."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import socketio
from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaConsumer

from danmaku_events import events
from danmaku_events.comment import Comment
from knit.eventing.identity import audience_of, service_identity
from knit.host import free_port
from knit.kafka.settings import CONSUMER_GROUP_SETTINGS
from knit.testing.identity import TestIssuer

pytestmark = pytest.mark.integration

STARTUP_SECONDS = 60  # these two only catch a hang: every wait ends on what it waits for
# As the local runtime names them for manifests/app.
PROCESSOR = service_identity("default", "danmaku-processor")
WEB_AUDIENCE = audience_of("Service", "default", "danmaku-web")
WAIT_SECONDS = 30


def _wait_until_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or no worker yet
            pass
        time.sleep(0.1)
    pytest.fail(f"danmaku-web did not become ready at {base}; its log:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    return TestIssuer(tmp_path_factory.mktemp("oidc"))


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[str]:
    """Base URL of danmaku-web served by gunicorn with the shipped config, verifying senders
    with `issuer`'s keys as on knit, the processor allowed to send."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    env |= {**issuer.env(WEB_AUDIENCE), "DANMAKU_WEB_EVENT_SENDERS": PROCESSOR}
    log = tmp_path_factory.mktemp("danmaku-web") / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--config", "python:danmaku_web.gunicorn_conf", "danmaku_web.wsgi:app"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_ready(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _submitted_record(bootstrap: str, comment_id: str):
    """The record danmaku-web produced for the comment, read back from the topic."""
    consumer = KafkaConsumer(
        events.TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"danmaku-web-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        **CONSUMER_GROUP_SETTINGS,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if dict(record.headers).get("ce_id") == comment_id.encode():
                        return record
        pytest.fail(f"no record with ce_id {comment_id!r} on {events.TOPIC} within 30 s")
    finally:
        consumer.close()


class Browser:
    """A Socket.IO client on a real WebSocket, joined to one room, recording what it gets."""

    def __init__(self, base: str, room: str) -> None:
        self.received: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        for name in ("danmaku", "rejected"):
            self.client.on(name, lambda data, name=name: self.received.put((name, data)))
        self.client.connect(base, transports=["websocket"], wait_timeout=WAIT_SECONDS)
        assert self.client.call("join", {"room": room}, timeout=WAIT_SECONDS)["ok"]

    def next_event(self) -> tuple[str, dict]:
        return self.received.get(timeout=WAIT_SECONDS)


@pytest.fixture
def browsers(web: str) -> Iterator[Callable[[str], Browser]]:
    opened: list[Browser] = []

    def open_in(room: str) -> Browser:
        opened.append(Browser(web, room))
        return opened[-1]

    yield open_in
    for browser in opened:
        browser.client.disconnect()


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


def _post_event(web: str, event: CloudEvent, headers: dict[str, str]) -> requests.Response:
    message = events.to_http(event)
    return requests.post(f"{web}/events", data=message.body, headers={**message.headers, **headers}, timeout=5)


@pytest.fixture
def deliver(web: str, issuer: TestIssuer) -> Callable[[CloudEvent], None]:
    """POSTs an event to /events as the processor does, with its token; expects 200."""

    def post(event: CloudEvent) -> None:
        response = _post_event(web, event, issuer.authorization(PROCESSOR, WEB_AUDIENCE))
        assert response.status_code == 200, response.text

    return post


def test_a_comment_posted_over_http_lands_in_kafka_as_a_binary_cloudevent_keyed_by_room(web, kafka_bootstrap):
    # given
    room = _room()
    # when
    response = requests.post(f"{web}/api/rooms/{room}/danmaku", json={"text": "hello from http"}, timeout=10)
    # then
    assert response.status_code == 202
    comment_id = response.json()["id"]
    record = _submitted_record(kafka_bootstrap, comment_id)
    headers = dict(record.headers)
    assert record.key == room.encode()
    assert headers["ce_type"] == events.SUBMITTED.encode()
    assert headers["ce_source"] == f"/danmaku-web/rooms/{room}".encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert b'"text": "hello from http"' in record.value


def test_a_published_comment_reaches_browsers_in_its_room_and_no_others(deliver, browsers):
    # given one browser in each of two rooms
    room_a, room_b = _room(), _room()
    in_a, in_b = browsers(room_a), browsers(room_b)
    for_a = Comment(id=uuid.uuid4().hex, room=room_a, text="for a", ts=1_767_000_000_000)
    for_b = Comment(id=uuid.uuid4().hex, room=room_b, text="for b", ts=1_767_000_000_001)
    # when the processor publishes a comment in each room, a's first
    deliver(events.published(for_a))
    deliver(events.published(for_b))
    # then b's first event is its own: a's would have come before it
    assert in_a.next_event() == ("danmaku", for_a.to_dict())
    assert in_b.next_event() == ("danmaku", for_b.to_dict())


def test_a_rejection_reaches_only_the_browser_that_sent_the_comment(deliver, browsers, kafka_bootstrap):
    # given two browsers in one room, one of which sent a comment
    room = _room()
    sender, neighbour = browsers(room), browsers(room)
    ack = sender.client.call("send", {"room": room, "text": "buy cheap followers"}, timeout=WAIT_SECONDS)
    assert ack["ok"], ack
    sender_id = dict(_submitted_record(kafka_bootstrap, ack["id"]).headers)["ce_danmakusender"].decode()
    # when the processor rejects it, then publishes another comment in the room
    deliver(events.rejected(ack["id"], room, "blocked_word", "contains a blocked word", sender_id))
    later = Comment(id=uuid.uuid4().hex, room=room, text="welcome", ts=1_767_000_000_002)
    deliver(events.published(later))
    # then
    assert sender.next_event() == (
        "rejected",
        {"id": ack["id"], "code": "blocked_word", "message": "contains a blocked word"},
    )
    assert neighbour.next_event() == ("danmaku", later.to_dict())


def test_a_forged_comment_without_a_token_is_refused_shown_to_nobody_and_not_kept(web, browsers, deliver):
    # given a browser in a room
    room = _room()
    browser = browsers(room)
    forged = Comment(id=uuid.uuid4().hex, room=room, text="forged", ts=1_767_000_000_003)
    # when anyone POSTs a published event with no token
    response = _post_event(web, events.published(forged), {})
    # then it is refused, and the next thing the browser sees is a genuine comment
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{web}/api/rooms/{room}/history", timeout=5).json() == {"items": []}
    genuine = Comment(id=uuid.uuid4().hex, room=room, text="genuine", ts=1_767_000_000_004)
    deliver(events.published(genuine))
    assert browser.next_event() == ("danmaku", genuine.to_dict())


def test_a_token_of_another_sender_is_refused_with_403(web, issuer):
    room = _room()
    forged = Comment(id=uuid.uuid4().hex, room=room, text="forged", ts=1_767_000_000_005)
    token = issuer.authorization("system:serviceaccount:default:danmaku-web", WEB_AUDIENCE)
    response = _post_event(web, events.published(forged), token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "sender_not_allowed"
    assert requests.get(f"{web}/api/rooms/{room}/history", timeout=5).json() == {"items": []}


def test_a_rejection_addressed_to_a_room_reaches_nobody_in_it(browsers, deliver):
    # given two browsers in a room
    room = _room()
    first, second = browsers(room), browsers(room)
    # when a rejection names the room as its sender, even with the processor's token
    deliver(events.rejected(uuid.uuid4().hex, room, "blocked_word", "you all are rejected", room))
    later = Comment(id=uuid.uuid4().hex, room=room, text="after", ts=1_767_000_000_006)
    deliver(events.published(later))
    # then neither got it: the first thing each sees is the comment published after it
    assert first.next_event() == ("danmaku", later.to_dict())
    assert second.next_event() == ("danmaku", later.to_dict())
