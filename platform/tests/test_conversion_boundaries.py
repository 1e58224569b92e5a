"""Record conversion at its edges: empty values and headers, every data form of a structured
event, bytes that are not UTF-8, and which attribute values are percent-encoded."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cloudevents.core.v1.event import CloudEvent

from knit.eventing.conversion import InvalidRecord, Record, attribute_strings, header_pairs, to_request, with_extensions

STRUCTURED = (("content-type", b"application/cloudevents+json"),)
BINARY = (
    ("ce_specversion", b"1.0"),
    ("ce_id", b"c-1"),
    ("ce_type", b"dev.danmaku.comment.submitted"),
    ("ce_source", b"/danmaku-web/rooms/lobby"),
)


def record(value, headers=(), key=None):
    return Record(topic="orders", partition=3, offset=17, timestamp_ms=1_700_000_000_123, key=key, value=value,
                  headers=headers)  # fmt: skip


def structured(attributes: str, key=None):
    value = '{"specversion": "1.0", "id": "e1", "type": "com.shop.order", "source": "/shop"' + attributes + "}"
    return to_request(record(value.encode(), STRUCTURED, key), "shop", "orders-source")


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (', "datacontenttype": "text/plain", "data": "two apples"', b"two apples"),  # text as it is
        (', "data": "two apples"', b'"two apples"'),  # no type means JSON: a JSON string, quoted
        (', "datacontenttype": "application/json", "data": "two apples"', b'"two apples"'),
        (', "datacontenttype": "text/plain", "data": {"n": 2}', b'{"n": 2}'),  # not text: as JSON
        ("", b""),  # no data at all
    ],
    ids=["text/plain string", "default type string", "json string", "text/plain object", "no data"],
)
def test_given_a_structured_event_then_its_data_becomes_the_body_as_its_content_type_says(data, body):
    assert structured(data).body == body


def test_given_a_structured_event_with_base64_data_then_data_base64_is_no_attribute():
    request = structured(', "datacontenttype": "text/plain", "data_base64": "aGk="')
    assert (request.body, "data_base64" in request.attributes) == (b"hi", False)
    assert "ce-data_base64" not in request.headers


def test_given_a_structured_event_whose_data_base64_is_not_base64_then_the_record_is_refused_saying_so():
    with pytest.raises(
        InvalidRecord, match=r"^orders\[3\]@17 is a structured CloudEvent whose data_base64 is not base64"
    ):
        structured(', "data_base64": "not base64!"')


def test_given_a_structured_event_missing_attributes_then_the_message_names_the_record():
    with pytest.raises(InvalidRecord, match=r"^orders\[3\]@17 has CloudEvent headers but no id"):
        to_request(record(b'{"specversion": "1.0", "type": "t", "source": "/s"}', STRUCTURED), "shop", "src")


@pytest.mark.parametrize(
    ("attributes", "partition_key"),
    [("", "customer-9"), (', "partitionkey": "given"', "given")],
    ids=["from the record key", "the event's own"],
)
def test_given_a_structured_event_with_a_record_key_then_the_key_is_its_partitionkey_unless_it_has_one(
    attributes, partition_key
):
    request = structured(attributes, key=b"customer-9")
    assert (request.attributes["partitionkey"], request.headers["ce-partitionkey"]) == (partition_key, partition_key)


def test_given_a_binary_event_without_a_value_then_the_body_is_empty():
    assert to_request(record(None, BINARY), "shop", "src").body == b""


def test_given_a_binary_event_then_its_content_type_is_passed_as_sent_not_percent_encoded():
    headers = (*BINARY, ("content-type", b"application/json; charset=utf-8"))
    assert (
        to_request(record(b"{}", headers), "shop", "src").headers["content-type"] == "application/json; charset=utf-8"
    )


def test_given_attribute_values_with_printable_ascii_then_only_space_quote_and_percent_are_encoded():
    headers = (*BINARY, ("ce_subject", b"partition:3#17/a@b+c=d&e?f"))
    assert to_request(record(b"{}", headers), "shop", "src").headers["ce-subject"] == "partition:3#17/a@b+c=d&e?f"


def test_given_a_plain_record_without_headers_then_it_gets_knatives_attributes_and_no_content_type():
    request = to_request(record(b"raw"), "shop", "orders-source")
    assert request.attributes["id"] == "partition:3/offset:17"
    assert "datacontenttype" not in request.attributes


def test_given_a_kafka_header_that_is_not_utf_8_then_its_bytes_read_as_replacement_characters():
    request = to_request(record(b"raw", (("trace", b"\xff\xfeid"),)), "shop", "orders-source")
    assert request.attributes["kafkaheadertrace"] == "\ufffd\ufffdid"


def test_given_extensions_then_the_body_is_kept():
    request = to_request(record(b"raw bytes"), "shop", "orders-source")
    assert with_extensions(request, {"knativeerrorcode": "500"}).body == b"raw bytes"


@pytest.mark.parametrize(
    ("time", "text"),
    [
        (datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "2026-03-02T09:00:00Z"),
        (datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")), "2026-03-02T09:00:00+09:00"),
    ],
    ids=["UTC as Z", "another offset as it is"],
)
def test_given_an_event_time_then_only_utc_is_written_with_z(time, text):
    event = CloudEvent({"id": "p1", "type": "dev.knative.sources.ping", "source": "/ping", "time": time})
    assert attribute_strings(event)["time"] == text


def test_given_kafka_headers_with_empty_values_then_each_pair_keeps_its_name_with_empty_bytes():
    assert header_pairs([("trace", b"abc"), ("empty", None), ("blank", b"")]) == (
        ("trace", b"abc"),
        ("empty", b""),
        ("blank", b""),
    )
    assert header_pairs(None) == ()
