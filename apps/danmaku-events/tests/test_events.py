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


BINARY = {"ce-specversion": "1.0", "ce-id": "c-1", "ce-type": events.SUBMITTED, "ce-source": "/x"}


@pytest.mark.parametrize("deep", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_binary_data_nested_thousands_deep_is_an_invalid_event_not_a_recursion_error(deep):
    with pytest.raises(events.InvalidEvent, match="levels of arrays and objects are accepted"):
        events.from_http({**BINARY, "content-type": "application/json"}, deep)


def test_binary_data_nested_deeper_than_the_limit_but_parseable_is_refused_too():
    deep = b"[" * 33 + b"]" * 33
    with pytest.raises(events.InvalidEvent, match="nested 33 levels deep; at most 32"):
        events.from_http({**BINARY, "content-type": "application/json"}, deep)


def test_a_deep_body_that_is_not_json_data_stays_text():
    deep = b"[" * 5000
    event = events.from_http({**BINARY, "content-type": "text/plain"}, deep)
    assert event.get_data() == "[" * 5000


def test_a_structured_event_nested_thousands_deep_is_an_invalid_event():
    body = b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(events.InvalidEvent, match="levels of arrays and objects are accepted"):
        events.from_http({"Content-Type": "application/cloudevents+json"}, body)


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (b"[]", "a structured event is a JSON object; got list"),
        (b'{"specversion": "1.0", "type": "t", "source": "/s"}', "missing required attribute: id"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data_base64": "%%%"}', "not base64"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data_base64": 7}', "must be a string"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "time": 7}', "time must be a string"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "time": "yesterday"}', "RFC 3339"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "x": {"a": 1}}', "attribute 'x' must be"),
        (b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "Bad-Name": "v"}', "attribute name"),
        (b'{"specversion": "1.0", "id": 1, "type": "t", "source": "/s"}', "'id' must be"),
        (b'{"specversion": "0.3", "id": "1", "type": "t", "source": "/s"}', "specversion"),
    ],
)
def test_a_structured_event_with_a_wrong_shape_says_what_is_wrong(envelope, reason):
    with pytest.raises(events.InvalidEvent, match=reason):
        events.from_http({"Content-Type": "application/cloudevents+json"}, envelope)


def test_a_binary_event_without_an_id_is_refused_rather_than_given_a_made_up_one():
    headers = {key: value for key, value in BINARY.items() if key != "ce-id"}
    with pytest.raises(events.InvalidEvent, match="missing required attribute: id"):
        events.from_http(headers, b"{}")


def test_structured_data_base64_and_time_are_decoded():
    body = (
        b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", '
        b'"time": "2024-05-01t12:00:00z", "data_base64": "aGk="}'
    )
    event = events.from_http({"Content-Type": "application/cloudevents+json; charset=utf-8"}, body)
    assert event.get_data() == b"hi"
    assert event.get_time().isoformat() == "2024-05-01T12:00:00+00:00"


def test_a_sender_that_is_not_a_string_is_refused():
    body = b'{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "danmakusender": 7}'
    event = events.from_http({"Content-Type": "application/cloudevents+json"}, body)
    with pytest.raises(events.InvalidEvent, match="danmakusender attribute must be a string; got int"):
        events.sender_of(event)
