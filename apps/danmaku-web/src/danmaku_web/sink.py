"""`POST /events`: the processor's verdicts come back here and go out to the browsers.

Only the processor may send here: each delivery must carry the platform's token for
this service's audience, naming a sender in DANMAKU_WEB_EVENT_SENDERS (401 without a
valid token, 403 for another sender, 503 when the app has no keys to check with); a
refused event is neither shown nor kept.

`published` joins the room's history and is emitted as `danmaku` to the room;
`rejected` is emitted only to the Socket.IO session that sent the comment, and only
when its sender is a session connected here, never to a room. Delivery is at least
once, so an event already handled is acknowledged again but not shown again.
"""

from __future__ import annotations

import re
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from flask import Blueprint, request
from flask_socketio import SocketIO

from danmaku_events import events
from danmaku_events.auth import AuthError, not_configured
from danmaku_web.errors import ApiError
from danmaku_web.services import services

bp = Blueprint("events", __name__)
# python-socketio's session ids: 15 random bytes in URL-safe base64 (engineio's generate_id).
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{20}")
NAMESPACE = "/"


@bp.post("/events")
def receive() -> dict[str, Any]:
    _check_sender()
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


def _check_sender() -> str:
    """The identity of the sender, if it may send here; else an ApiError with the status."""
    verifier = services().event_senders
    try:
        if verifier is None:
            raise not_configured("events cannot be accepted")
        return verifier.verify(request.headers)
    except AuthError as error:
        raise ApiError(error.status, error.code, error.message, error.headers) from None


def live_session(socketio: SocketIO, sid: str) -> bool:
    """Is `sid` a Socket.IO session connected to this server, and would an emit to it reach
    that session alone? `emit(to=...)` takes room names and session ids alike (every
    session is also a room of its own), so a room name must never pass for a session."""
    if not SESSION_ID.fullmatch(sid):
        return False
    manager = socketio.server.manager
    if not manager.is_connected(sid, NAMESPACE):
        return False
    return {member for member, _ in manager.get_participants(NAMESPACE, sid)} == {sid}


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
    # Comments posted over HTTP have no session to tell; a session gone has nobody to tell.
    if isinstance(sender, str) and live_session(shared.socketio, sender):
        payload = {key: rejection[key] for key in ("id", "code", "message")}
        shared.socketio.emit("rejected", payload, to=sender)
    return {"id": rejection["id"], "duplicate": False}
