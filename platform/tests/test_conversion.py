"""Kafka records to CloudEvents over HTTP: CloudEvents pass through unchanged, other records
get Knative's attributes, and extensions (overrides, dead-letter errors) land in either mode."""

import base64

import pytest

from knit.eventing.conversion import InvalidRecord, Record, to_request, with_extensions
from knit.eventing.sender import Outcome, error_extensions

BINARY_HEADERS = (
    ("ce_specversion", b"1.0"),
    ("ce_id", b"c-1"),
    ("ce_type", b"dev.danmaku.comment.submitted"),
    ("ce_source", b"/danmaku-web/rooms/lobby"),
    ("content-type", b"application/json"),
    ("ce_danmakusender", b"sid-1"),
)


def record(value=b'{"text": "hi"}', headers=BINARY_HEADERS, key=b"lobby", offset=41):
    return Record(topic="danmaku.comments", partition=2, offset=offset, timestamp_ms=1_700_000_000_123, key=key,
                  value=value, headers=headers)  # fmt: skip


def test_a_binary_cloudevent_record_passes_through_header_for_header():
    request = to_request(record(), "default", "feed")
    assert request.headers == {
        "ce-specversion": "1.0",
        "ce-id": "c-1",
        "ce-type": "dev.danmaku.comment.submitted",
        "ce-source": "/danmaku-web/rooms/lobby",
        "content-type": "application/json",
        "ce-danmakusender": "sid-1",
        "ce-partitionkey": "lobby",  # the record key, as the CloudEvents Kafka binding maps it
    }
    assert request.body == b'{"text": "hi"}'  # the bytes as they were, not re-encoded JSON
    assert request.id == "c-1"


def test_nothing_is_made_up_for_a_cloudevent_without_time_or_key():
    request = to_request(record(key=None), "default", "feed")
    assert "ce-time" not in request.headers and "ce-partitionkey" not in request.headers


def test_header_values_are_percent_encoded_as_the_http_binding_says():
    headers = (*BINARY_HEADERS, ("ce_subject", 'a b "c" 100% é'.encode()))
    assert to_request(record(headers=headers), "d", "s").headers["ce-subject"] == "a%20b%20%22c%22%20100%25%20%C3%A9"


def test_a_structured_cloudevent_record_is_sent_in_binary_mode_with_its_attributes():
    value = b'{"specversion": "1.0", "id": "e1", "type": "x.y", "source": "/s", "n": 7, "data": {"a": 1}}'
    request = to_request(record(value, (("content-type", b"application/cloudevents+json"),), key=None), "d", "s")
    assert request.headers == {
        "ce-specversion": "1.0", "ce-id": "e1", "ce-type": "x.y", "ce-source": "/s", "ce-n": "7",
        "content-type": "application/json",
    }  # fmt: skip
    assert request.body == b'{"a": 1}'


def test_structured_base64_data_becomes_the_raw_body():
    value = b'{"specversion": "1.0", "id": "e1", "type": "x", "source": "/s", "datacontenttype": "image/png", ' \
        b'"data_base64": "iVBORw=="}'  # fmt: skip
    request = to_request(record(value, (("content-type", b"application/cloudevents+json"),), key=None), "d", "s")
    assert (request.headers["content-type"], request.body) == ("image/png", b"\x89PNG")


@pytest.mark.parametrize(
    ("value", "headers", "problem"),
    [
        (b"{}", BINARY_HEADERS[:1] + BINARY_HEADERS[2:], "has CloudEvent headers but no id"),
        (b"{}", (("ce_specversion", b"1.0"),), "no id, source, type"),
        (b"{}", (("ce_specversion", b"0.3"), *BINARY_HEADERS[1:]), "specversion '0.3'"),
        (b"{not json", (("content-type", b"application/cloudevents+json"),), "not JSON"),
        (b"[1]", (("content-type", b"application/cloudevents+json"),), "not a JSON object"),
    ],
)
def test_a_broken_cloudevent_record_is_refused_with_the_reason(value, headers, problem):
    with pytest.raises(InvalidRecord, match=problem) as raised:
        to_request(record(value, headers), "default", "feed")
    assert "danmaku.comments[2]@41" in str(raised.value)


def test_a_plain_record_gets_knatives_kafka_source_attributes():
    plain = Record(topic="orders", partition=3, offset=17, timestamp_ms=1_700_000_000_123, key=b"customer-9",
                   value=b"raw bytes", headers=(("Trace-Id", b"abc"), ("content-type", b"text/plain")))  # fmt: skip
    request = to_request(plain, "shop", "orders-source")
    assert request.attributes == {
        "specversion": "1.0",
        "id": "partition:3/offset:17",
        "type": "dev.knative.kafka.event",
        "source": "/apis/v1/namespaces/shop/kafkasources/orders-source#orders",
        "subject": "partition:3#17",
        "time": "2023-11-14T22:13:20.123000Z",
        "key": "customer-9",
        "kafkaheadertraceid": "abc",
        "datacontenttype": "text/plain",
    }
    assert request.headers["ce-id"] == "partition:3/offset:17"
    assert request.body == b"raw bytes"


def test_extensions_are_added_as_headers():
    request = with_extensions(to_request(record(), "d", "s"), {"team": "a"})
    assert request.headers["ce-team"] == "a" and request.attributes["team"] == "a"
    assert request.headers["content-type"] == "application/json"


def test_a_dead_letter_says_where_what_and_why_as_knative_does():
    answered = Outcome("http://sink/", 400, b'{"error": "bad"}', reason="http://sink/ answered 400")
    assert error_extensions(answered) == {
        "knativeerrordest": "http://sink/",
        "knativeerrorcode": "400",
        "knativeerrordata": base64.b64encode(b'{"error": "bad"}').decode(),
    }
    silent = Outcome("http://sink/", None, reason="http://sink/ unreachable (ClientConnectorError)")
    extensions = error_extensions(silent)
    assert extensions["knativeerrorcode"] == "500"
    assert base64.b64decode(extensions["knativeerrordata"]).startswith(b"dispatch error: http://sink/ unreachable")


def test_dead_letter_data_is_cut_to_1024_characters_of_base64():
    huge = Outcome("http://sink/", 500, b"x" * 5000, reason="")
    assert len(error_extensions(huge)["knativeerrordata"]) == 1024
