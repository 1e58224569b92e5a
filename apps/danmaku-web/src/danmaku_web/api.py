"""The HTTP API: post a comment to a room, read a room's recent comments."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request

from danmaku_web.errors import ApiError, room_or_404
from danmaku_web.services import services
from danmaku_web.submission import submit

bp = Blueprint("api", __name__, url_prefix="/api/rooms/<room>")


@bp.post("/danmaku")
def post_comment(room: str) -> tuple[dict[str, Any], int]:
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the comment as JSON with Content-Type: application/json; got {request.mimetype or 'none'!r}",
        )
    try:
        fields = json.loads(request.get_data())  # a body over MAX_CONTENT_LENGTH raises 413 here
    except ValueError as error:
        raise ApiError(
            400, "malformed_json", f'the body is not valid JSON ({error}); send e.g. {{"text": "hello"}}'
        ) from error
    comment = submit(fields, sender=f"address {request.remote_addr}", room=room)
    return {"id": comment.id}, 202


@bp.get("/history")
def history(room: str) -> dict[str, Any]:
    room = room_or_404(room)
    kept = services().history
    raw = request.args.get("limit", str(kept.size))
    if not raw.isdecimal() or not 1 <= int(raw) <= kept.size:
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {kept.size}; got {raw!r}")
    return {"items": [comment.to_dict() for comment in kept.recent(room, int(raw))]}
