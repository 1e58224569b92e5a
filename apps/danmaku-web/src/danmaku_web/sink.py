"""`POST /events`: the processor's verdicts come back here and go out to the browsers.

`published` joins the room's history and is emitted as `danmaku` to the room;
`rejected` is emitted only to the Socket.IO session that sent the comment. Delivery is
at least once, so an event already handled is acknowledged again but not shown again.
"""

from __future__ import annotations

from typing import Any

from cloudevents.core.v1.event import CloudEvent
from flask import Blueprint, request

from danmaku_events import events
from danmaku_web.errors import ApiError
from danmaku_web.services import services

bp = Blueprint("events", __name__)


@bp.post("/events")
def receive() -> dict[str, Any]:
    try:
        event = events.from_http(request.headers, request.get_data())
        kind = event.get_type()
        if kind == events.PUBLISHED:
            return _published(event)
        if kind == events.REJECTED:
            return _rejected(event)
    except events.InvalidEvent as error:
        raise ApiError(400, "invalid_event", str(error)) from error
    raise ApiError(
        400,
        "unknown_event_type",
        f"event type {kind!r} is not handled here; send {events.PUBLISHED} or {events.REJECTED}",
    )


def _published(event: CloudEvent) -> dict[str, Any]:
    comment = events.comment_of(event)
    shared = services()
    if not shared.recent_ids.first_time((events.PUBLISHED, comment.id)):
        return {"id": comment.id, "duplicate": True}
    shared.history.add(comment)
    shared.socketio.emit("danmaku", comment.to_dict(), to=comment.room)
    return {"id": comment.id, "duplicate": False}


def _rejected(event: CloudEvent) -> dict[str, Any]:
    rejection = events.rejection_of(event)
    shared = services()
    if not shared.recent_ids.first_time((events.REJECTED, rejection["id"])):
        return {"id": rejection["id"], "duplicate": True}
    sender = events.sender_of(event)
    if sender:  # comments posted over HTTP have no session to tell
        payload = {key: rejection[key] for key in ("id", "code", "message")}
        shared.socketio.emit("rejected", payload, to=sender)
    return {"id": rejection["id"], "duplicate": False}
