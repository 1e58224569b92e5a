"""The Socket.IO side, default namespace: browsers `join` a room and `send` comments.

Each connection is in one room at a time; `danmaku` (to the room) and `rejected` (to the
sender) are emitted by the /events sink when the processor's verdict comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request
from flask_socketio import SocketIO, join_room, leave_room, rooms

from danmaku_events.comment import InvalidComment, validate_room
from danmaku_web.errors import ApiError
from danmaku_web.services import services
from danmaku_web.submission import submit


def _sender(sid: str) -> str:
    return f"Socket.IO session {sid}"


def register(socketio: SocketIO) -> None:
    @socketio.on("join")
    def join(data: Any) -> dict[str, Any]:
        try:
            room = validate_room(data.get("room") if isinstance(data, Mapping) else None)
        except InvalidComment as error:
            return {"ok": False, **error.to_error()}
        for joined in rooms():
            if joined not in (request.sid, room):
                leave_room(joined)
        join_room(room)
        history = [comment.to_dict() for comment in services().history.recent(room)]
        return {"ok": True, "room": room, "history": history}

    @socketio.on("send")
    def send(data: Any) -> dict[str, Any]:
        try:
            comment = submit(data, sender=_sender(request.sid), sid=request.sid)
        except ApiError as error:
            return {"ok": False, **error.to_error()}
        return {"ok": True, "id": comment.id}

    @socketio.on("disconnect")
    def disconnect(reason: str) -> None:
        services().rate_limiter.forget(_sender(request.sid))
