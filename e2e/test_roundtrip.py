"""The whole path without a browser: HTTP or Socket.IO in, Kafka, the KafkaSource, the
processor, and back out to Socket.IO clients, on the local runtime with the real broker."""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
import socketio

pytestmark = pytest.mark.integration

APP_MANIFESTS = Path(__file__).resolve().parents[1] / "manifests" / "app"


class Listener:
    """A python-socketio client over a real WebSocket, joined to one room."""

    def __init__(self, url: str, room: str) -> None:
        self.danmaku: queue.Queue[dict] = queue.Queue()
        self.rejected: queue.Queue[dict] = queue.Queue()
        self.client = socketio.Client()
        self.client.on("danmaku", self.danmaku.put)
        self.client.on("rejected", self.rejected.put)
        self.client.connect(url, transports=["websocket"])
        reply = self.client.call("join", {"room": room}, timeout=10)
        assert reply["ok"], reply

    def next_danmaku(self, timeout: float = 60) -> dict:  # only a hang takes 60 s
        return self.danmaku.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture
def listeners(running_app):
    opened: list[Listener] = []

    def open_in(room: str) -> Listener:
        listener = Listener(running_app.url("danmaku-web"), room)
        opened.append(listener)
        return listener

    yield open_in
    for listener in opened:
        listener.close()


def new_room() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


def post_comment(running_app, room: str, **fields) -> str:
    response = requests.post(f"{running_app.url('danmaku-web')}/api/rooms/{room}/danmaku", json=fields, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_comment_posted_over_http_reaches_its_room_and_no_other(running_app, listeners):
    room, other = new_room(), new_room()
    inside, outside = listeners(room), listeners(other)

    comment_id = post_comment(running_app, room, text="  hello   world ", color="#ff0000", mode="top")

    comment = inside.next_danmaku()
    assert comment["id"] == comment_id
    assert (comment["room"], comment["text"], comment["color"], comment["mode"]) == (
        room,
        "hello world",
        "#FF0000",
        "top",
    )
    assert comment["size"] == "normal" and isinstance(comment["ts"], int)
    # No event says "the other room got nothing": a comment sent there by mistake would have come
    # with the one inside, which is here already, so 2 s more is a margin, not a deadline.
    with pytest.raises(queue.Empty):
        outside.next_danmaku(timeout=2)


def test_a_masked_word_is_starred_out_for_everyone(running_app, listeners):
    room = new_room()
    listener = listeners(room)

    post_comment(running_app, room, text="what an IDIOT move")

    assert listener.next_danmaku()["text"] == "what an ***** move"


def test_a_rejected_comment_reaches_only_its_sender(running_app, listeners):
    room = new_room()
    sender, bystander = listeners(room), listeners(room)

    reply = sender.client.call("send", {"room": room, "text": "去死"}, timeout=10)

    assert reply["ok"] is True
    rejection = sender.rejected.get(timeout=60)
    assert rejection["id"] == reply["id"]
    assert rejection["code"] == "blocked_word"
    assert rejection["message"]
    with pytest.raises(queue.Empty):
        bystander.rejected.get(timeout=2)
    assert bystander.danmaku.empty() and sender.danmaku.empty()


def test_comments_wait_in_kafka_while_the_processor_is_down_and_arrive_when_it_is_back(running_app, listeners):
    room = new_room()
    listener = listeners(room)
    running_app.suspend("danmaku-processor")
    try:
        sent = [post_comment(running_app, room, text=f"while down #{n}") for n in range(5)]
        with pytest.raises(queue.Empty):
            listener.next_danmaku(timeout=3)
    finally:
        running_app.resume("danmaku-processor")

    deadline = time.monotonic() + 60
    arrived = []
    while len(arrived) < len(sent) and time.monotonic() < deadline:
        arrived.append(listener.next_danmaku(timeout=max(0.1, deadline - time.monotonic()))["id"])
    assert arrived == sent  # all of them, once each, in the order they were sent (one room = one partition)


def test_deleting_the_processor_holds_comments_in_kafka_and_reapplying_it_delivers_them(running_app, listeners):
    # Given the app delivering comments to a room
    room = new_room()
    listener = listeners(room)
    first = post_comment(running_app, room, text="before")
    assert listener.next_danmaku()["id"] == first
    processor = running_app.describe("danmaku-processor")
    pids = [i["pid"] for revision in processor["revisions"] for i in revision["instances"]]
    address = processor["status"]["address"]["url"]
    assert pids

    # When the processor Service is deleted
    changes = running_app.delete([("Service", "default", "danmaku-processor")])

    # Then its instances are gone, its address answers 404, and the KafkaSource says why it stopped
    assert changes[0] == "Service default/danmaku-processor: deleted with its Revisions danmaku-processor-00001"
    assert changes[1].startswith("KafkaSource default/danmaku-comments: stopped (spec.sink.ref: no Service")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert requests.post(address + "/", json={}, timeout=10).status_code == 404
    (source,) = [r for r in running_app.eventing() if r["kind"] == "KafkaSource"]
    assert (source["name"], source["ready"]["status"], source["ready"]["reason"]) == (
        "danmaku-comments", "False", "SinkNotFound"
    )  # fmt: skip

    # When comments are posted meanwhile (web still takes them into Kafka), and the app is applied again
    waiting = [post_comment(running_app, room, text=f"while deleted {n}") for n in range(3)]
    running_app.apply([APP_MANIFESTS])

    # Then the comments that waited in Kafka reach the room
    assert {listener.next_danmaku()["id"] for _ in waiting} == set(waiting)
    assert running_app.describe("danmaku-processor")["status"]["address"]["url"] == address
