"""The Socket.IO side, default namespace: browsers `join` a room and `send` comments.

Each connection is in one room at a time; `danmaku` (to the room) and `rejected` (to the
sender) are emitted by the /events sink when the processor's verdict comes back.

What a hostile client can make this hold is bounded per client address: at most
MAX_CONNECTIONS_PER_ADDRESS connections (the next connect is refused with the reason),
and one comment bucket shared with the HTTP API. Every event is acknowledged, malformed
ones with the contract's error: no argument or a non-object (`invalid_body`), a message
over MAX_CONTENT_LENGTH (`payload_too_large`, the connection kept), JSON nested too
deeply (`too_deep`), an event name nobody handles (`unknown_event`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import current_app, request
from flask_socketio import SocketIO, join_room, leave_room, rooms
from socketio import packet as sio_packet
from socketio.exceptions import ConnectionRefusedError as ConnectionRefused

from danmaku_events import jsonlimits
from danmaku_events.comment import MAX_TEXT_LENGTH, InvalidComment, json_type_name, validate_room
from danmaku_web.errors import ApiError
from danmaku_web.ratelimit import ConnectionLimit
from danmaku_web.services import services
from danmaku_web.submission import client_address, submit

log = logging.getLogger(__name__)

# The event a packet becomes when its JSON cannot be read (see Packet).
UNREADABLE = "unreadable"


class LimitedJSON:
    """The json module Socket.IO and Engine.IO parse packets with: nesting is bounded.

    The standard parser recurses per level, so a message of a few thousand `[` raises
    RecursionError deep inside python-socketio (Engine.IO even closes the connection);
    jsonlimits raises TooDeep, a ValueError, which Engine.IO treats as "not JSON" and
    Packet below turns into an answer.
    """

    dumps = staticmethod(json.dumps)
    loads = staticmethod(jsonlimits.loads)


class _Unreadable:
    """Why an event's arguments could not be read; no JSON a client sends decodes to one."""

    def __init__(self, error: jsonlimits.TooDeep) -> None:
        self.error = error


class Packet(sio_packet.Packet):
    """A Socket.IO packet whose event arguments may be nested too deeply to read.

    python-socketio drops a packet whose JSON does not parse (with a logged traceback)
    and the sender's ack never comes. An event, whose ack id is parsed before its JSON,
    becomes the UNREADABLE event instead, so the sender hears why.
    """

    json = LimitedJSON

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            return super().decode(encoded_packet)
        except jsonlimits.TooDeep as error:
            if self.packet_type not in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
                raise
            self.packet_type = sio_packet.EVENT  # attachments, if it announced any, are ignored
            self.data = [UNREADABLE, _Unreadable(error)]
            return 0


def _encoded_size(value: Any) -> int:
    """Bytes `value` takes as compact JSON, as a browser sends it (binary counts its length)."""

    def binary(item: Any) -> str:
        return "0" * len(item) if isinstance(item, bytes | bytearray) else str(item)

    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=binary).encode())


def _only_argument(event: str, args: tuple[Any, ...], shape: str) -> Any:
    """The event's one argument, within the size limit; else ApiError with the contract's code."""
    if len(args) != 1:
        raise ApiError(400, "invalid_body", f"{event} takes one argument, {shape}; got {len(args) or 'no'} arguments")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    size = _encoded_size(args[0])
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the {event} message is {size} bytes as JSON, more than {limit} bytes; "
            f"send one comment (text of at most {MAX_TEXT_LENGTH} characters) per message",
        )
    return args[0]


def register(socketio: SocketIO, connections: ConnectionLimit) -> None:
    @socketio.on("connect")
    def connect(auth: Any = None) -> None:
        address = client_address()
        if not connections.open(request.sid, address):
            message = (
                f"too many connections from address {address}: at most {connections.per_address} at once; "
                "close another tab or connection and connect again"
            )
            # A Socket.IO client gets `message` as its connect_error's message and the
            # second argument as its data: the contract's error shape.
            raise ConnectionRefused(message, {"error": {"code": "too_many_connections", "message": message}})

    @socketio.on("disconnect")
    def disconnect(reason: str = "") -> None:
        connections.close(request.sid)

    @socketio.on("join")
    def join(*args: Any) -> dict[str, Any]:
        try:
            data = _only_argument("join", args, '{"room": "<name>"}')
            if not isinstance(data, Mapping):
                raise InvalidComment("body", f'join takes {{"room": "<name>"}}; got {json_type_name(data)}')
            room = validate_room(data.get("room"))
        except ApiError as error:
            return error.to_ack()
        except InvalidComment as error:
            return {"ok": False, **error.to_error()}
        try:
            join_room(room)
        except ValueError:  # Socket.IO names each session's own room by its sid: never enter another's
            return {"ok": False, **InvalidComment("room", f"room {room!r} is taken; pick another name").to_error()}
        for joined in rooms():
            if joined not in (request.sid, room):
                leave_room(joined)
        history = [comment.to_dict() for comment in services().history.recent(room)]
        return {"ok": True, "room": room, "history": history}

    @socketio.on("send")
    def send(*args: Any) -> dict[str, Any]:
        try:
            data = _only_argument("send", args, '{"room", "text", …}')
            comment = submit(data, address=client_address(), sid=request.sid)
        except ApiError as error:
            return error.to_ack()
        return {"ok": True, "id": comment.id}

    @socketio.on(UNREADABLE)
    def unreadable(*args: Any) -> dict[str, Any]:
        if len(args) == 1 and isinstance(args[0], _Unreadable):
            return ApiError(400, "too_deep", f"{args[0].error}; send one flat JSON object").to_ack()
        return _unknown_event(UNREADABLE)

    @socketio.on("*")
    def unknown(event: Any, *args: Any) -> dict[str, Any]:
        return _unknown_event(event)

    @socketio.on_error_default
    def failed(error: Exception) -> dict[str, Any]:
        # A bug, not the client's doing: log it, and answer anyway, so no ack is left hanging.
        log.error("Socket.IO event %r failed", (request.event or {}).get("message"), exc_info=error)
        return ApiError(500, "internal_error", "the server failed to handle this event; try again").to_ack()


def _unknown_event(event: Any) -> dict[str, Any]:
    return ApiError(400, "unknown_event", f"no event {str(event)[:40]!r} here; send join or send").to_ack()
