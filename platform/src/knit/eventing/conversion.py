"""Kafka records to CloudEvents over HTTP, as Knative's KafkaSource sends them.

Every event goes out in HTTP binary content mode, as Knative's dispatcher sends it. A
record that already is a CloudEvent keeps its attributes: binary content mode (`ce_`
headers) maps header for header, structured mode (`content-type:
application/cloudevents+json`) gives its attributes as headers and its data as the body;
the record key, if any, becomes the `partitionkey` extension, as the CloudEvents Kafka
binding says. No attribute is made up.
Any other record gets Knative's attributes: id `partition:<p>/offset:<o>`, type
`dev.knative.kafka.event`, source `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`,
subject `partition:<p>#<o>`, time = the record's timestamp, extension `key`, and each
Kafka header as `kafkaheader<name>`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from cloudevents.core.bindings import http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from knit.eventing import jsonlimits

KAFKA_EVENT_TYPE = "dev.knative.kafka.event"
STRUCTURED = "application/cloudevents+json"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
_FORMAT = JSONFormat()
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")
# The CloudEvents HTTP binding: header values are percent-encoded, except printable ASCII
# other than space, double quote and percent.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


class InvalidRecord(ValueError):
    """A record that claims to be a CloudEvent but is not a valid one."""


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

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Request:
    """A CloudEvent as the HTTP request that carries it, with its attributes as strings
    (what filters compare and logs name)."""

    headers: dict[str, str]
    body: bytes
    attributes: dict[str, str]

    @property
    def id(self) -> str:
        return self.attributes.get("id", "")


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _binary(attributes: Mapping[str, str], body: bytes) -> Request:
    headers = {
        ("content-type" if name == "datacontenttype" else f"ce-{name}"): (
            value if name == "datacontenttype" else quote(value, safe=_HEADER_SAFE)
        )
        for name, value in attributes.items()
    }
    return Request(headers, body, dict(attributes))


def _check(attributes: Mapping[str, object], where: str) -> None:
    missing = [name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise InvalidRecord(f"{where} has CloudEvent headers but no {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise InvalidRecord(f"{where} is a CloudEvent of specversion {attributes['specversion']!r}; knit sends 1.0")


def _from_binary(record: Record) -> Request:
    attributes: dict[str, str] = {}
    for name, value in record.headers:
        lowered = name.lower()
        if lowered.startswith("ce_"):
            attributes[lowered[3:]] = _text(value)
        elif lowered == "content-type":
            attributes["datacontenttype"] = _text(value)
    _check(attributes, record.where)
    if record.key is not None:
        attributes.setdefault("partitionkey", _text(record.key))
    return _binary(attributes, record.value or b"")


def _from_structured(record: Record) -> Request:
    """Structured mode in, binary mode out (as Knative's dispatcher sends every event):
    the attributes as they were, the data as the body."""
    try:
        event = jsonlimits.loads(record.value or b"")  # a value nested thousands deep must not crash the lane
    except ValueError as error:
        raise InvalidRecord(f"{record.where} is a structured CloudEvent whose value is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise InvalidRecord(f"{record.where} is a structured CloudEvent whose value is not a JSON object")
    _check(event, record.where)
    attributes = {name: str(value) for name, value in event.items() if name not in ("data", "data_base64")}
    if "data_base64" in event:
        try:
            body = base64.b64decode(event["data_base64"])
        except (TypeError, ValueError) as error:  # not a string, not base64
            problem = f"{record.where} is a structured CloudEvent whose data_base64 is not base64: {error}"
            raise InvalidRecord(problem) from None
    elif "data" in event:
        data = event["data"]
        attributes.setdefault("datacontenttype", "application/json")
        textual = isinstance(data, str) and "json" not in attributes["datacontenttype"]
        body = data.encode() if textual else json.dumps(data).encode()
    else:
        body = b""
    if record.key is not None:
        attributes.setdefault("partitionkey", _text(record.key))
    return _binary(attributes, body)


def _kafka_source_event(record: Record, namespace: str, source_name: str) -> Request:
    attributes: dict[str, object] = {
        "id": f"partition:{record.partition}/offset:{record.offset}",
        "type": KAFKA_EVENT_TYPE,
        "source": f"/apis/v1/namespaces/{namespace}/kafkasources/{source_name}#{record.topic}",
        "subject": f"partition:{record.partition}#{record.offset}",
        "time": datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC),
    }
    if record.key is not None:
        attributes["key"] = _text(record.key)
    for name, value in record.headers:
        if name.lower() == "content-type":
            if value:  # an empty datacontenttype is not a valid attribute; none is
                attributes["datacontenttype"] = _text(value)
        else:
            attributes["kafkaheader" + _NOT_ALPHANUMERIC.sub("", name.lower())] = _text(value)
    return from_event(CloudEvent(attributes, record.value or None))


def from_event(event: CloudEvent) -> Request:
    """An event knit makes itself (a Kafka record's, a ping) as an HTTP binary-mode request."""
    message = http.to_binary(event, _FORMAT)
    return Request(dict(message.headers), message.body, attribute_strings(event))


def to_request(record: Record, namespace: str, source_name: str) -> Request:
    """The HTTP request that delivers a record; InvalidRecord if it is a broken CloudEvent."""
    headers = {name.lower(): value for name, value in record.headers}
    if "ce_specversion" in headers:
        return _from_binary(record)
    if _text(headers.get("content-type", b"")).startswith(STRUCTURED):
        return _from_structured(record)
    return _kafka_source_event(record, namespace, source_name)


def with_extensions(request: Request, extensions: Mapping[str, str]) -> Request:
    """The same event with extension attributes set (a source's ceOverrides, Knative's
    knativeerror* on a dead letter)."""
    return _binary({**request.attributes, **extensions}, request.body) if extensions else request


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


def header_pairs(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, value or b"") for name, value in headers or ())
