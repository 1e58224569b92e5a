"""Socket.IO `join` and `send` on the default namespace, and what each acknowledges."""

from __future__ import annotations

import pytest
from socketio.packet import EVENT

from danmaku_events import events
from danmaku_events.comment import Comment
from danmaku_web import sockets
from danmaku_web.app import create_app


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


def test_sessions_from_one_address_share_its_burst_and_the_refusal_says_when_to_retry(connect):
    # given two sessions from one address, one of which used the burst of 3
    eager, patient = connect("music"), connect("music")
    for text in ("one", "two", "three"):
        assert eager.emit("send", {"room": "music", "text": text}, callback=True)["ok"]
    # when
    refused = patient.emit("send", {"room": "music", "text": "four"}, callback=True)
    # then
    assert refused["ok"] is False
    assert refused["error"]["code"] == "rate_limited"
    assert "address 127.0.0.1" in refused["error"]["message"]
    assert refused["error"]["retry_after"] == 2  # one token at 0.5 per second


def test_reconnecting_does_not_refill_the_bucket(connect):
    # given a session that used the burst of 3, then disconnected
    first = connect("music")
    for text in ("one", "two", "three"):
        assert first.emit("send", {"room": "music", "text": text}, callback=True)["ok"]
    first.disconnect()
    # when the same address connects again
    again = connect("music")
    ack = again.emit("send", {"room": "music", "text": "four"}, callback=True)
    # then
    assert ack["ok"] is False
    assert ack["error"]["code"] == "rate_limited"


def test_http_and_socketio_draw_on_one_bucket_per_address(client, connect, publisher):
    # given the burst of 3 used over HTTP
    for text in ("one", "two", "three"):
        assert client.post("/api/rooms/music/danmaku", json={"text": text}).status_code == 202
    socket = connect("music")
    # when
    ack = socket.emit("send", {"room": "music", "text": "four"}, callback=True)
    # then
    assert ack["error"]["code"] == "rate_limited"
    assert [comment.text for comment, _ in publisher.published] == ["one", "two", "three"]


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


# Malformed events: every one is acknowledged with the contract's error.


@pytest.mark.parametrize("event", ["send", "join"])
def test_an_event_without_its_argument_is_refused_in_the_ack(connect, publisher, event):
    socket = connect("music")
    ack = socket.emit(event, callback=True)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_body"
    assert f"{event} takes one argument" in ack["error"]["message"]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("event", "argument", "code", "fragment"),
    [
        ("send", "hello", "invalid_body", "must be a JSON object; got a string"),
        ("send", ["music", "hello"], "invalid_body", "got an array"),
        ("send", None, "invalid_body", "got null"),
        ("send", {"room": "music", "text": 42}, "invalid_text", "must be a string; got a number"),
        ("join", "music", "invalid_body", 'join takes {"room": "<name>"}; got a string'),
        ("join", {"room": ["music"]}, "invalid_room", "got an array of 1 item"),
    ],
)
def test_an_event_with_an_argument_of_the_wrong_type_is_refused_in_the_ack(connect, event, argument, code, fragment):
    socket = connect("music")
    ack = socket.emit(event, argument, callback=True)
    assert ack["ok"] is False
    assert ack["error"]["code"] == code
    assert fragment in ack["error"]["message"]


def test_an_event_with_two_arguments_is_refused_in_the_ack(connect):
    socket = connect("music")
    ack = socket.emit("send", {"room": "music", "text": "hi"}, "extra", callback=True)
    assert ack["error"]["code"] == "invalid_body"
    assert "got 2 arguments" in ack["error"]["message"]


def test_an_event_nobody_handles_is_answered_and_harmless(connect, publisher):
    socket = connect("music")
    ack = socket.emit("delete_everything", {"room": "music"}, callback=True)
    assert ack == {
        "ok": False,
        "error": {"code": "unknown_event", "message": "no event 'delete_everything' here; send join or send"},
    }
    assert socket.emit("send", {"room": "music", "text": "still here"}, callback=True)["ok"]


def test_a_message_over_4_kib_is_refused_in_the_ack_and_the_session_keeps_working(connect, publisher):
    # given
    socket = connect("music")
    oversized = {"room": "music", "text": "hi", "nick": "x" * 5000}
    # when
    refused = socket.emit("send", oversized, callback=True)
    accepted = socket.emit("send", {"room": "music", "text": "after"}, callback=True)
    # then
    assert refused["ok"] is False
    assert refused["error"]["code"] == "payload_too_large"
    assert "more than 4096 bytes" in refused["error"]["message"]
    assert accepted["ok"] is True
    assert [comment.text for comment, _ in publisher.published] == ["after"]


def test_a_message_is_measured_as_utf8_json():
    # 1,400 three-byte characters: 1,400 code points, 4,200+ bytes
    assert sockets._encoded_size({"text": "弹" * 1400}) == len('{"text":""}') + 3 * 1400


def test_event_arguments_nested_too_deeply_become_an_answer_not_an_exception():
    # given an event with ack id 7 whose argument nests 5,000 arrays, as a client could send it
    encoded = '27["send",' + "[" * 5000 + "]" * 5000 + "]"
    # when
    packet = sockets.Packet(encoded_packet=encoded)
    # then
    assert (packet.packet_type, packet.id, packet.data[0]) == (EVENT, 7, sockets.UNREADABLE)


def test_the_unreadable_event_name_sent_by_a_client_is_just_unknown(connect):
    socket = connect("music")
    ack = socket.emit(sockets.UNREADABLE, {"code": "too_deep"}, callback=True)
    assert ack["error"]["code"] == "unknown_event"


# The connection cap per client address.


def test_a_connection_over_the_cap_per_address_is_refused_until_one_closes(publisher):
    # given an address allowed 2 connections, both open
    app = create_app({"ASYNC_MODE": "threading", "MAX_CONNECTIONS_PER_ADDRESS": 2}, publisher=publisher)
    socketio = app.extensions["socketio"]
    first, second = socketio.test_client(app), socketio.test_client(app)
    # when
    third = socketio.test_client(app)
    # then
    assert (first.is_connected(), second.is_connected(), third.is_connected()) == (True, True, False)
    # and when one closes, the next connection is accepted
    first.disconnect()
    assert socketio.test_client(app).is_connected()


def test_joining_a_room_named_like_another_viewers_session_is_refused_and_keeps_the_current_room(
    connect, deliver, app, monkeypatch
):
    # given a viewer in "music", and a session whose id reads as the room name "lobby-x"
    # (Socket.IO puts each session in a room named by its id; nobody may enter another's)
    socket = connect("music")
    manager = app.extensions["socketio"].server.manager
    real = manager.is_sid_room
    monkeypatch.setattr(manager, "is_sid_room", lambda namespace, room: room == "lobby-x" or real(namespace, room))
    # when
    ack = socket.emit("join", {"room": "lobby-x"}, callback=True)
    # then it is refused in the ack, and the viewer is still in "music"
    assert ack["ok"] is False
    assert ack["error"] == {"code": "invalid_room", "message": "room 'lobby-x' is taken; pick another name"}
    socket.get_received()
    deliver(events.published(Comment(id="c-9", room="music", text="still here", ts=1_767_000_000_000)))
    assert [m["args"][0]["id"] for m in socket.get_received() if m["name"] == "danmaku"] == ["c-9"]
