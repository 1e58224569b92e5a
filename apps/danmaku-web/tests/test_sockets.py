"""Socket.IO `join` and `send` on the default namespace, and what each acknowledges."""

from __future__ import annotations

from danmaku_events import events
from danmaku_events.comment import Comment


def test_joining_a_room_acknowledges_with_its_history(connect, deliver, app):
    # given a comment already published in the room
    earlier = Comment(id="c-1", room="music", text="earlier", ts=1_767_000_000_000)
    deliver(events.published(earlier))
    socket = app.extensions["socketio"].test_client(app)
    # when
    ack = socket.emit("join", {"room": "music"}, callback=True)
    # then
    assert ack == {"ok": True, "room": "music", "history": [earlier.to_dict()]}


def test_joining_an_invalid_room_is_refused_in_the_ack(app):
    socket = app.extensions["socketio"].test_client(app)
    ack = socket.emit("join", {"room": "Music Room"}, callback=True)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_room"
    assert "'Music Room'" in ack["error"]["message"]


def test_a_sent_comment_is_published_with_the_senders_session_and_acknowledged_with_its_id(connect, publisher):
    # given
    socket = connect("music")
    # when
    ack = socket.emit("send", {"room": "music", "text": "hello", "size": "large"}, callback=True)
    # then
    [(comment, sender)] = publisher.published
    assert ack == {"ok": True, "id": comment.id}
    assert (comment.room, comment.text, comment.size) == ("music", "hello", "large")
    assert isinstance(sender, str) and sender  # the session id a rejection goes back to


def test_an_invalid_comment_is_refused_in_the_ack(connect, publisher):
    socket = connect("music")
    ack = socket.emit("send", {"room": "music", "text": "hi", "color": "#12345"}, callback=True)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_color"
    assert "'#12345'" in ack["error"]["message"]
    assert publisher.published == []


def test_a_session_over_its_burst_is_refused_while_another_session_may_still_send(connect):
    # given one session that used its burst of 3
    eager, patient = connect("music"), connect("music")
    for text in ("one", "two", "three"):
        assert eager.emit("send", {"room": "music", "text": text}, callback=True)["ok"]
    # when
    refused = eager.emit("send", {"room": "music", "text": "four"}, callback=True)
    accepted = patient.emit("send", {"room": "music", "text": "hi"}, callback=True)
    # then
    assert refused["ok"] is False
    assert refused["error"]["code"] == "rate_limited"
    assert accepted["ok"] is True


def test_kafka_being_unreachable_is_reported_in_the_ack(connect, publisher):
    publisher.failure = "Kafka at 10.0.0.9:9092 did not acknowledge the comment within 5 s"
    socket = connect("music")
    ack = socket.emit("send", {"room": "music", "text": "hello"}, callback=True)
    assert ack == {"ok": False, "error": {"code": "unavailable", "message": publisher.failure}}


def test_joining_another_room_leaves_the_first(connect, deliver, received):
    # given a session that moved from music to games
    socket = connect("music")
    assert socket.emit("join", {"room": "games"}, callback=True)["ok"]
    # when a comment is published in music
    deliver(events.published(Comment(id="c-1", room="music", text="hello", ts=1)))
    # then
    assert received(socket) == []
