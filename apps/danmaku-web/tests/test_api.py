"""POST /api/rooms/<room>/danmaku and GET /api/rooms/<room>/history."""

from __future__ import annotations

import io

import pytest

from danmaku_events import events
from danmaku_events.comment import Comment
from danmaku_web.app import create_app


def test_a_valid_comment_is_published_with_an_id_and_timestamp_and_answered_202(client, publisher):
    # when
    response = client.post(
        "/api/rooms/music/danmaku", json={"text": "  great  solo ", "color": "#ff8800", "mode": "top"}
    )
    # then
    assert response.status_code == 202
    [(comment, sender)] = publisher.published
    assert response.json == {"id": comment.id}
    assert len(comment.id) == 32 and int(comment.id, 16) >= 0
    assert comment.ts > 1_700_000_000_000
    assert (comment.room, comment.text, comment.color, comment.mode) == ("music", "great solo", "#FF8800", "top")
    assert sender is None


def test_a_body_that_is_not_json_is_refused_with_415(client, publisher):
    response = client.post("/api/rooms/music/danmaku", data="text=hello", content_type="text/plain")
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.json["error"]["message"]
    assert "'text/plain'" in response.json["error"]["message"]
    assert publisher.published == []


def test_malformed_json_is_refused_with_400(client, publisher):
    response = client.post("/api/rooms/music/danmaku", data='{"text": "hi"', content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "malformed_json"
    assert "not valid JSON" in response.json["error"]["message"]
    assert publisher.published == []


def test_a_body_over_4_kib_is_refused_with_413(client, publisher):
    # given a body padded far beyond any real comment
    body = '{"text": "hi", "nick": "' + "x" * 5000 + '"}'
    # when
    response = client.post("/api/rooms/music/danmaku", data=body, content_type="application/json")
    # then
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert "4096 bytes" in response.json["error"]["message"]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ({"text": "   "}, "invalid_text", "1-100 characters"),
        ({"text": "x" * 101}, "invalid_text", "got 101"),
        ({"text": "hi", "color": "red"}, "invalid_color", "#RRGGBB"),
        ({"text": "hi", "mode": "sideways"}, "invalid_mode", "scroll, top, bottom"),
        ({"text": "hi", "colour": "#FFFFFF"}, "invalid_body", "unknown field 'colour'"),
        ({"text": "hi", "room": "games"}, "invalid_room", "differs from the URL"),
    ],
)
def test_an_invalid_field_is_refused_with_422_naming_the_field(client, publisher, body, code, reason):
    response = client.post("/api/rooms/music/danmaku", json=body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == code
    assert reason in response.json["error"]["message"]
    assert publisher.published == []


def test_an_invalid_room_in_the_url_is_refused_with_422(client):
    response = client.post("/api/rooms/Music!/danmaku", json={"text": "hi"})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_room"


def test_a_sender_over_its_burst_is_refused_with_429_until_tokens_refill(client, publisher):
    # given a burst of 3 already used by one address
    for text in ("one", "two", "three"):
        assert client.post("/api/rooms/music/danmaku", json={"text": text}).status_code == 202
    # when
    response = client.post("/api/rooms/music/danmaku", json={"text": "four"})
    # then
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert "at most 3 at once, then 0.5 per second" in response.json["error"]["message"]
    assert response.headers["Retry-After"] == "2"
    assert [comment.text for comment, _ in publisher.published] == ["one", "two", "three"]


def test_kafka_being_unreachable_is_answered_503_naming_the_address(client, publisher):
    # given
    publisher.failure = "Kafka at 10.0.0.9:9092 did not acknowledge the comment within 5 s"
    # when
    response = client.post("/api/rooms/music/danmaku", json={"text": "hello"})
    # then
    assert response.status_code == 503
    assert response.json == {"error": {"code": "unavailable", "message": publisher.failure}}


def _published_in(room: str, texts: list[str]) -> list[Comment]:
    return [Comment(id=f"c{i}", room=room, text=text, ts=1_767_000_000_000 + i) for i, text in enumerate(texts)]


def test_history_lists_a_rooms_published_comments_oldest_first(client, deliver):
    # given
    for comment in _published_in("music", ["first", "second", "third"]):
        deliver(events.published(comment))
    deliver(events.published(Comment(id="elsewhere", room="games", text="gg", ts=1)))
    # when
    response = client.get("/api/rooms/music/history")
    # then
    assert response.status_code == 200
    assert [item["text"] for item in response.json["items"]] == ["first", "second", "third"]
    assert response.json["items"][0] == _published_in("music", ["first"])[0].to_dict()


def test_history_limit_returns_the_most_recent_comments(client, deliver):
    for comment in _published_in("music", ["first", "second", "third"]):
        deliver(events.published(comment))
    response = client.get("/api/rooms/music/history?limit=2")
    assert [item["text"] for item in response.json["items"]] == ["second", "third"]


def test_history_keeps_only_the_configured_number_of_comments(client, deliver):
    # given HISTORY_SIZE = 20
    for comment in _published_in("music", [f"comment {n}" for n in range(25)]):
        deliver(events.published(comment))
    # when
    items = client.get("/api/rooms/music/history").json["items"]
    # then
    assert [item["text"] for item in items] == [f"comment {n}" for n in range(5, 25)]


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "21"])
def test_an_invalid_history_limit_is_refused_with_400(client, limit):
    response = client.get(f"/api/rooms/music/history?limit={limit}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_limit"
    assert response.json["error"]["message"] == f"limit must be a whole number from 1 to 20; got {limit!r}"


def test_history_of_an_invalid_room_is_not_found(client):
    response = client.get("/api/rooms/NOT_A_ROOM/history")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "invalid_room"


# As gunicorn passes a Transfer-Encoding: chunked body: no length, the stream ended by the server.
CHUNKED = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}


def test_a_streamed_body_over_4_kib_without_a_length_is_refused_with_413(client, publisher):
    # given a body with no Content-Length, from a server that ends the stream itself (as
    # gunicorn does for Transfer-Encoding: chunked), valid JSON if cut at 4096 bytes
    body = b'{"text": "cut and accepted"}' + b" " * 8192
    # when
    response = client.post(
        "/api/rooms/music/danmaku",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides=CHUNKED,
    )
    # then
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert publisher.published == []


def test_a_streamed_body_within_4_kib_without_a_length_is_accepted(client, publisher):
    response = client.post(
        "/api/rooms/music/danmaku",
        input_stream=io.BytesIO(b'{"text": "streamed"}'),
        content_type="application/json",
        environ_overrides=CHUNKED,
    )
    assert response.status_code == 202
    assert [comment.text for comment, _ in publisher.published] == ["streamed"]


def test_a_body_exactly_at_the_limit_is_read_whole(client, publisher):
    body = b'{"text": "just fits"}'
    body += b" " * (4096 - len(body))
    response = client.post("/api/rooms/music/danmaku", data=body, content_type="application/json")
    assert response.status_code == 202


def test_json_nested_5000_levels_is_refused_with_400_naming_the_depth(publisher):
    # given a limit large enough that the body is read, not refused for its size
    client = create_app({"MAX_CONTENT_LENGTH": 16384}, publisher=publisher).test_client()
    # when
    response = client.post("/api/rooms/music/danmaku", data="[" * 5000 + "]" * 5000, content_type="application/json")
    # then
    assert response.status_code == 400
    assert response.json["error"]["code"] == "too_deep"
    assert "at most 32 levels" in response.json["error"]["message"]
    assert publisher.published == []


def test_json_nested_33_levels_is_refused_and_32_is_read(client):
    too_deep = client.post("/api/rooms/music/danmaku", data="[" * 33 + "]" * 33, content_type="application/json")
    deep_enough = client.post("/api/rooms/music/danmaku", data="[" * 32 + "]" * 32, content_type="application/json")
    assert (too_deep.status_code, too_deep.json["error"]["code"]) == (400, "too_deep")
    assert (deep_enough.status_code, deep_enough.json["error"]["code"]) == (422, "invalid_body")
