"""The CloudEvents the danmaku services exchange, built with the CloudEvents SDK.

danmaku-web produces `dev.danmaku.comment.submitted` to the Kafka topic
`danmaku.comments` (binary content mode, key = room); danmaku-processor answers with
`dev.danmaku.comment.published` or `dev.danmaku.comment.rejected` (same id) over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudevents.core.bindings import http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

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
    """Parse a binary or structured HTTP CloudEvent; InvalidEvent says what is wrong."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "ce-specversion" not in lowered and not lowered.get("content-type", "").startswith(
        "application/cloudevents+json"
    ):
        raise InvalidEvent(
            "not a CloudEvent: expected ce-* headers (binary mode) or "
            "Content-Type application/cloudevents+json (structured mode)"
        )
    try:
        return http.from_http(http.HTTPMessage(headers=lowered, body=body), _FORMAT)
    except BaseCloudEventException as error:
        raise InvalidEvent(f"invalid CloudEvent: {error}") from error
    except ValueError as error:  # malformed JSON in structured mode, bad time, ...
        raise InvalidEvent(f"malformed CloudEvent: {error}") from error


def sender_of(event: CloudEvent) -> str | None:
    return event.get_extension(SENDER)


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
        raise InvalidEvent(f"{REJECTED} data must hold string id, room, code and message; got {data!r}")
    try:
        validate_room(data["room"])
    except InvalidComment as error:
        raise InvalidEvent(error.message) from error
    return {key: data[key] for key in ("id", "room", "code", "message")}
