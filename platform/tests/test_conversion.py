"""Kafka records to CloudEvents over HTTP, with Knative's attributes for plain records."""

from datetime import UTC, datetime

from knit.eventing.conversion import Record, record_to_event, to_http, with_overrides


def test_a_binary_cloudevent_record_passes_through_with_its_attributes():
    record = Record(
        topic="danmaku.comments",
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        key=b"lobby",
        value=b'{"text": "hi"}',
        headers=(
            ("ce_specversion", b"1.0"),
            ("ce_id", b"c-1"),
            ("ce_type", b"dev.danmaku.comment.submitted"),
            ("ce_source", b"/danmaku-web/rooms/lobby"),
            ("content-type", b"application/json"),
            ("ce_danmakusender", b"sid-1"),
        ),
    )
    message = to_http(record_to_event(record, "default", "feed"))
    assert message.headers["ce-id"] == "c-1"
    assert message.headers["ce-type"] == "dev.danmaku.comment.submitted"
    assert message.headers["ce-source"] == "/danmaku-web/rooms/lobby"
    assert message.headers["ce-danmakusender"] == "sid-1"
    assert message.headers["content-type"] == "application/json"
    assert message.body == b'{"text": "hi"}'


def test_a_structured_cloudevent_record_is_sent_in_binary_mode():
    record = Record(
        topic="t",
        partition=0,
        offset=0,
        timestamp_ms=0,
        key=None,
        value=b'{"specversion": "1.0", "id": "e1", "type": "x.y", "source": "/s", "data": {"a": 1}}',
        headers=(("content-type", b"application/cloudevents+json"),),
    )
    message = to_http(record_to_event(record, "default", "feed"))
    assert (message.headers["ce-id"], message.headers["ce-type"]) == ("e1", "x.y")
    assert message.body == b'{"a": 1}'


def test_a_plain_record_gets_knatives_kafka_source_attributes():
    record = Record(
        topic="orders",
        partition=3,
        offset=17,
        timestamp_ms=1_700_000_000_123,
        key=b"customer-9",
        value=b"raw bytes",
        headers=(("Trace-Id", b"abc"), ("content-type", b"text/plain")),
    )
    event = record_to_event(record, "shop", "orders-source")
    attributes = event.get_attributes()
    assert attributes["id"] == "partition:3/offset:17"
    assert attributes["type"] == "dev.knative.kafka.event"
    assert attributes["source"] == "/apis/v1/namespaces/shop/kafkasources/orders-source#orders"
    assert attributes["subject"] == "partition:3#17"
    assert attributes["time"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert attributes["key"] == "customer-9"
    assert attributes["kafkaheadertraceid"] == "abc"
    assert attributes["datacontenttype"] == "text/plain"
    assert to_http(event).body == b"raw bytes"


def test_overrides_add_extensions_to_every_event():
    record = Record(topic="t", partition=0, offset=1, timestamp_ms=0, key=None, value=b"x")
    event = with_overrides(record_to_event(record, "default", "s"), {"team": "a"})
    assert event.get_extension("team") == "a"
