"""POST /events: the processor's verdicts reach the right browsers, once."""

from __future__ import annotations

import pytest

from danmaku_events import events
from danmaku_events.comment import Comment

HELLO = Comment(id="3f2a9c", room="music", text="hello", color="#FF8800", nick="mika", ts=1_767_000_000_000)


@pytest.fixture
def sent_by(publisher):
    """Sends a comment from a session; returns the sender id the processor would get."""

    def send(socket) -> str:
        assert socket.emit("send", {"room": "music", "text": "hello"}, callback=True)["ok"]
        return publisher.published[-1][1]

    return send


def test_a_published_comment_is_emitted_to_its_room_only(connect, deliver, received):
    # given
    in_music, in_games = connect("music"), connect("games")
    # when
    response = deliver(events.published(HELLO))
    # then
    assert response.status_code == 200
    assert received(in_music) == [("danmaku", HELLO.to_dict())]
    assert received(in_games) == []


def test_a_published_comment_joins_the_rooms_history(client, deliver):
    deliver(events.published(HELLO))
    assert client.get("/api/rooms/music/history").json == {"items": [HELLO.to_dict()]}


def test_a_redelivered_published_event_is_shown_and_kept_once(client, connect, deliver, received):
    # given
    socket = connect("music")
    deliver(events.published(HELLO))
    # when the same event arrives again
    response = deliver(events.published(HELLO))
    # then
    assert response.status_code == 200
    assert response.json == {"id": HELLO.id, "duplicate": True}
    assert received(socket) == [("danmaku", HELLO.to_dict())]
    assert len(client.get("/api/rooms/music/history").json["items"]) == 1


def test_a_rejection_reaches_only_the_session_that_sent_the_comment(connect, deliver, received, sent_by):
    # given two sessions in one room, one of which sent a comment
    sender, neighbour = connect("music"), connect("music")
    sender_id = sent_by(sender)
    # when the processor rejects it
    response = deliver(events.rejected("3f2a9c", "music", "blocked_word", "contains a blocked word", sender_id))
    # then
    assert response.status_code == 200
    assert received(sender) == [
        ("rejected", {"id": "3f2a9c", "code": "blocked_word", "message": "contains a blocked word"})
    ]
    assert received(neighbour) == []


def test_a_redelivered_rejection_is_shown_once(connect, deliver, received, sent_by):
    sender = connect("music")
    rejection = events.rejected("3f2a9c", "music", "blocked_word", "contains a blocked word", sent_by(sender))
    deliver(rejection)
    deliver(rejection)
    assert [name for name, _ in received(sender)] == ["rejected"]


def test_a_rejection_of_a_comment_posted_over_http_is_acknowledged_and_shown_to_nobody(connect, deliver, received):
    socket = connect("music")
    response = deliver(events.rejected("3f2a9c", "music", "blocked_word", "contains a blocked word"))
    assert response.status_code == 200
    assert received(socket) == []


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Content-Type": "application/json"}, b'{"text": "hi"}', "not a CloudEvent"),
        ({"Content-Type": "application/cloudevents+json"}, b"{not json", "malformed CloudEvent"),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "3f2a9c",
                "ce-type": events.PUBLISHED,
                "ce-source": "/p",
                "Content-Type": "application/json",
            },
            b'{"id": "3f2a9c", "room": "music"}',
            "text is required",
        ),
    ],
)
def test_a_malformed_event_is_refused_with_400_saying_why(client, processor_token, headers, body, reason):
    response = client.post("/events", data=body, headers={**headers, **processor_token})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_event"
    assert reason in response.json["error"]["message"]


def test_an_event_of_an_unknown_type_is_refused_with_400_naming_the_type(client, processor_token):
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "dev.danmaku.comment.liked", "ce-source": "/x"}
    response = client.post("/events", data=b"", headers={**headers, **processor_token})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unknown_event_type"
    assert "'dev.danmaku.comment.liked'" in response.json["error"]["message"]
