"""The CloudEvents the danmaku services exchange, built with the CloudEvents SDK.

danmaku-web produces `dev.danmaku.comment.submitted` to the Kafka topic
`danmaku.comments` (binary content mode, key = room); danmaku-processor answers with
`dev.danmaku.comment.published` or `dev.danmaku.comment.rejected` (same id) over HTTP.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from cloudevents.core.bindings import http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from danmaku_events import jsonlimits
from danmaku_events.comment import Comment, InvalidComment, comment_from_dict, validate_room

TOPIC = "danmaku.comments"
SUBMITTED = "dev.danmaku.comment.submitted"
PUBLISHED = "dev.danmaku.comment.published"
REJECTED = "dev.danmaku.comment.rejected"
JSON = "application/json"
# Extension attribute naming the Socket.IO session that sent a comment, so a rejection
# reaches only its sender. Absent for comments posted over HTTP.
SENDER = "danmakusender"
PROCESSOR_SOURCE = "/danmaku-processor"

_FORMAT = JSONFormat()
STRUCTURED = "application/cloudevents+json"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,64}")
# How much of a value a stranger sent is quoted back in an error message.
_SHOWN = 80


class InvalidEvent(ValueError):
    """An incoming event is not one this service can handle; the message says why."""


def web_source(room: str) -> str:
    return f"/danmaku-web/rooms/{room}"


def submitted(comment: Comment, sender: str | None = None) -> CloudEvent:
    attributes = {
        "type": SUBMITTED,
        "source": web_source(comment.room),
        "id": comment.id,
        "datacontenttype": JSON,
    }
    if sender:
        attributes[SENDER] = sender
    return CloudEvent(attributes, comment.to_dict())


def published(comment: Comment, sender: str | None = None) -> CloudEvent:
    attributes = {"type": PUBLISHED, "source": PROCESSOR_SOURCE, "id": comment.id, "datacontenttype": JSON}
    if sender:
        attributes[SENDER] = sender
    return CloudEvent(attributes, comment.to_dict())


def rejected(comment_id: str, room: str, code: str, message: str, sender: str | None = None) -> CloudEvent:
    attributes = {"type": REJECTED, "source": PROCESSOR_SOURCE, "id": comment_id, "datacontenttype": JSON}
    if sender:
        attributes[SENDER] = sender
    return CloudEvent(attributes, {"id": comment_id, "room": room, "code": code, "message": message})


def to_kafka_record(event: CloudEvent) -> kafka.KafkaMessage:
    """Kafka binary content mode; the key is the room, so one room's comments stay in order."""
    return kafka.to_binary(event, _FORMAT, key_mapper=lambda e: e.get_data()["room"].encode())


def to_http(event: CloudEvent) -> http.HTTPMessage:
    """HTTP binary content mode."""
    return http.to_binary(event, _FORMAT)


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary or structured HTTP CloudEvent (specversion 1.0); InvalidEvent says what is wrong.

    Whatever a client sends, the answer is a CloudEvent or InvalidEvent (a 400 for the
    caller): JSON (the data in binary mode, the whole event in structured mode) is parsed
    by `jsonlimits`, so nesting too deep is refused instead of exhausting the stack, and
    every attribute is checked before the SDK builds the event (the SDK would make up a
    missing id, and fails with TypeError or AttributeError on some wrong types).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    # The media type decides the mode (CloudEvents HTTP binding, 3.1); ce-* headers
    # next to a structured body are ignored, as the binding says.
    if lowered.get("content-type", "").lower().startswith(STRUCTURED):
        return _from_structured(body)
    if "ce-specversion" in lowered:
        return _from_binary(lowered, body)
    raise InvalidEvent(
        f"not a CloudEvent: expected ce-* headers (binary mode) or Content-Type {STRUCTURED} (structured mode)"
    )


def _from_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    attributes: dict[str, Any] = {
        name.removeprefix("ce-"): unquote(value) for name, value in headers.items() if name.startswith("ce-")
    }
    content_type = headers.get("content-type")
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return _event(attributes, _binary_data(body, content_type))


def _binary_data(body: bytes, content_type: str | None) -> Any:
    """The data as the SDK reads it (JSON when the content type says so and it parses,
    else text, else bytes), with JSON's depth bounded."""
    if not body:
        return None
    if JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type or JSON):
        try:
            return jsonlimits.loads(body)
        except jsonlimits.TooDeep as error:
            raise InvalidEvent(f"malformed CloudEvent data: {error}") from None
        except ValueError:
            pass  # not JSON after all: kept as text, as the SDK does; the consumer decides
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def _from_structured(body: bytes) -> CloudEvent:
    try:
        envelope = jsonlimits.loads(body)
    except ValueError as error:  # TooDeep, not JSON, not UTF-8
        raise InvalidEvent(f"malformed CloudEvent: the body is not acceptable JSON ({error})") from None
    if not isinstance(envelope, dict):
        raise InvalidEvent(f"malformed CloudEvent: a structured event is a JSON object; got {type(envelope).__name__}")
    data = envelope.pop("data", None)
    encoded = envelope.pop("data_base64", None)
    if encoded is not None:
        if data is not None:
            raise InvalidEvent("malformed CloudEvent: it has both data and data_base64; send one")
        if not isinstance(encoded, str):
            raise InvalidEvent(f"malformed CloudEvent: data_base64 must be a string; got {type(encoded).__name__}")
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError as error:  # binascii.Error, or a character outside ASCII
            raise InvalidEvent(f"malformed CloudEvent: data_base64 is not base64 ({error})") from None
    attributes: dict[str, Any] = {}
    for name, value in envelope.items():
        if value is None:
            continue  # JSON null: the attribute is absent
        # The CloudEvents type system has strings, integers and booleans (in JSON).
        if not isinstance(value, str | int):
            raise InvalidEvent(
                f"invalid CloudEvent: attribute {_shown(name)} must be a string, integer or boolean; "
                f"got {type(value).__name__}"
            )
        attributes[name] = value
    return _event(attributes, data)


def _event(attributes: dict[str, Any], data: Any) -> CloudEvent:
    missing = [name for name in REQUIRED_ATTRIBUTES if name not in attributes]
    if missing:
        raise InvalidEvent(f"invalid CloudEvent: missing required attribute{'s' if len(missing) > 1 else ''}: "
                           f"{', '.join(missing)}")  # fmt: skip
    for name in attributes:
        if name not in REQUIRED_ATTRIBUTES and not _EXTENSION_NAME.fullmatch(name):
            raise InvalidEvent(
                f"invalid CloudEvent: attribute name {_shown(name)} must be 1-64 lowercase letters and digits"
            )
    if "time" in attributes:
        attributes["time"] = _time(attributes["time"])
    try:
        return CloudEvent(attributes, data)
    except BaseCloudEventException as error:
        raise InvalidEvent(f"invalid CloudEvent: {error}") from error


def _time(value: Any) -> datetime:
    """RFC 3339, as CloudEvents' `time` is (fromisoformat takes it, bar lowercase t and z)."""
    if not isinstance(value, str):
        raise InvalidEvent(f"invalid CloudEvent: time must be a string; got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise InvalidEvent(
            f"invalid CloudEvent: time {_shown(value)} is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
        ) from None


def _shown(value: Any) -> str:
    """A stranger's value, quoted and cut short for an error message."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def sender_of(event: CloudEvent) -> str | None:
    """The Socket.IO session that sent the comment, if any; a structured event could carry
    a number there, which no session is."""
    sender = event.get_extension(SENDER)
    if sender is not None and not isinstance(sender, str):
        raise InvalidEvent(f"the {SENDER} attribute must be a string; got {type(sender).__name__}")
    return sender


def comment_of(event: CloudEvent) -> Comment:
    """The comment a submitted or published event carries, validated against the schema."""
    data = event.get_data()
    try:
        comment = comment_from_dict(data)
    except InvalidComment as error:
        raise InvalidEvent(f"{event.get_type()} {event.get_id()!r}: {error.message}") from error
    if comment.id != event.get_id():
        raise InvalidEvent(f"event id {event.get_id()!r} differs from comment id {comment.id!r}")
    return comment


def rejection_of(event: CloudEvent) -> dict[str, Any]:
    """The {id, room, code, message} a rejected event carries."""
    data = event.get_data()
    if not isinstance(data, Mapping) or not all(
        isinstance(data.get(key), str) for key in ("id", "room", "code", "message")
    ):
        raise InvalidEvent(f"{REJECTED} data must hold string id, room, code and message; got {_shown(data)}")
    try:
        validate_room(data["room"])
    except InvalidComment as error:
        raise InvalidEvent(error.message) from error
    return {key: data[key] for key in ("id", "room", "code", "message")}
