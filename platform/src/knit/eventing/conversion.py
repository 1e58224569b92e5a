"""Kafka records to CloudEvents over HTTP (binary content mode), as Knative's KafkaSource does.

A record that already is a CloudEvent (binary or structured) passes through with its
attributes unchanged; any other record gets Knative's attributes: id
`partition:<p>/offset:<o>`, type `dev.knative.kafka.event`, source
`/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`, subject `partition:<p>#<o>`,
time = the record's timestamp, extension `key`, and each Kafka header as
`kafkaheader<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.core.bindings import http, kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

KAFKA_EVENT_TYPE = "dev.knative.kafka.event"
_FORMAT = JSONFormat()
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True)
class Record:
    """What the dispatcher needs of a consumed Kafka record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def is_cloudevent(record: Record) -> bool:
    names = {name.lower() for name, _ in record.headers}
    if "ce_specversion" in names:
        return True
    content_type = dict((n.lower(), v) for n, v in record.headers).get("content-type", b"")
    return content_type.startswith(b"application/cloudevents")


def _kafka_source_event(record: Record, namespace: str, source_name: str) -> CloudEvent:
    attributes: dict[str, object] = {
        "id": f"partition:{record.partition}/offset:{record.offset}",
        "type": KAFKA_EVENT_TYPE,
        "source": f"/apis/v1/namespaces/{namespace}/kafkasources/{source_name}#{record.topic}",
        "subject": f"partition:{record.partition}#{record.offset}",
        "time": datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
    }
    if record.key is not None:
        attributes["key"] = record.key.decode("utf-8", errors="replace")
    for name, value in record.headers:
        if name.lower() == "content-type":
            attributes["datacontenttype"] = value.decode("utf-8", errors="replace")
        else:
            attributes["kafkaheader" + _NOT_ALPHANUMERIC.sub("", name.lower())] = value.decode(
                "utf-8", errors="replace"
            )
    return CloudEvent(attributes, record.value or None)


def record_to_event(record: Record, namespace: str, source_name: str) -> CloudEvent:
    if is_cloudevent(record):
        message = kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
        return kafka.from_kafka(message, _FORMAT)
    return _kafka_source_event(record, namespace, source_name)


def with_overrides(event: CloudEvent, extensions: Mapping[str, str]) -> CloudEvent:
    """Apply a source's ceOverrides: extension attributes set on every event it sends."""
    if not extensions:
        return event
    return CloudEvent({**event.get_attributes(), **extensions}, event.get_data())


def to_http(event: CloudEvent) -> http.HTTPMessage:
    return http.to_binary(event, _FORMAT)


def header_pairs(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, value or b"") for name, value in headers or ())


def attribute_strings(event: CloudEvent) -> dict[str, str]:
    """An event's attributes as the strings filters compare (time in RFC 3339)."""
    strings = {}
    for name, value in event.get_attributes().items():
        if isinstance(value, datetime):
            text = value.isoformat()
            strings[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
        elif value is not None:
            strings[name] = str(value)
    return strings
