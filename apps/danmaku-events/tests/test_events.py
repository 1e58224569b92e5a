"""The CloudEvents the services exchange: encoding and decoding through the SDK."""

import pytest

from danmaku_events import events
from danmaku_events.comment import parse_comment


@pytest.fixture
def comment():
    return parse_comment({"text": "hello", "room": "music"}, id="c-1", ts=10)


def test_a_submitted_comment_becomes_a_binary_kafka_record_keyed_by_room(comment):
    record = events.to_kafka_record(events.submitted(comment, sender="sid-9"))
    assert record.key == b"music"
    assert record.headers["ce_type"] == b"dev.danmaku.comment.submitted"
    assert record.headers["ce_source"] == b"/danmaku-web/rooms/music"
    assert record.headers["ce_id"] == b"c-1"
    assert record.headers["ce_specversion"] == b"1.0"
    assert record.headers["content-type"] == b"application/json"
    assert record.headers["ce_danmakusender"] == b"sid-9"
    assert b'"text": "hello"' in record.value


def test_an_event_survives_the_http_round_trip(comment):
    message = events.to_http(events.published(comment, sender="sid-9"))
    decoded = events.from_http(message.headers, message.body)
    assert decoded.get_type() == events.PUBLISHED
    assert events.comment_of(decoded) == comment
    assert events.sender_of(decoded) == "sid-9"


def test_a_structured_event_is_accepted(comment):
    body = (
        b'{"specversion": "1.0", "type": "dev.danmaku.comment.submitted", "source": "/x", '
        b'"id": "c-1", "datacontenttype": "application/json", "data": '
        + events.to_http(events.submitted(comment)).body
        + b"}"
    )
    decoded = events.from_http({"Content-Type": "application/cloudevents+json"}, body)
    assert events.comment_of(decoded) == comment
    assert events.sender_of(decoded) is None


def test_a_rejection_carries_its_reason():
    message = events.to_http(events.rejected("c-1", "music", "blocked_word", "no", sender="s"))
    decoded = events.from_http(message.headers, message.body)
    assert events.rejection_of(decoded) == {"id": "c-1", "room": "music", "code": "blocked_word", "message": "no"}


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Content-Type": "application/json"}, b"{}", "not a CloudEvent"),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, b"{}", "source"),
        ({"Content-Type": "application/cloudevents+json"}, b"{not json", "malformed CloudEvent"),
    ],
)
def test_a_malformed_event_says_what_is_wrong(headers, body, reason):
    with pytest.raises(events.InvalidEvent, match=reason):
        events.from_http(headers, body)


def test_an_event_whose_data_is_not_a_valid_comment_is_refused(comment):
    message = events.to_http(events.submitted(comment))
    with pytest.raises(events.InvalidEvent, match="text must be 1-100"):
        events.comment_of(events.from_http(message.headers, message.body.replace(b"hello", b"   ")))


def test_an_event_whose_id_differs_from_its_comment_is_refused(comment):
    message = events.to_http(events.submitted(comment))
    headers = {**message.headers, "ce-id": "other"}
    with pytest.raises(events.InvalidEvent, match="differs"):
        events.comment_of(events.from_http(headers, message.body))
