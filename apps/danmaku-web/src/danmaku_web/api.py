"""The HTTP API: post a comment to a room, read a room's recent comments."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from danmaku_events import jsonlimits
from danmaku_web.errors import ApiError, room_or_404
from danmaku_web.services import services
from danmaku_web.submission import client_address, submit

bp = Blueprint("api", __name__, url_prefix="/api/rooms/<room>")


def _body() -> bytes:
    """The request body, or 413 when it is over MAX_CONTENT_LENGTH, however it was sent.

    Werkzeug refuses a Content-Length over the limit up front, but a chunked body (no
    length; gunicorn sets wsgi.input_terminated) is only cut at the limit: `get_data()`
    would return the first MAX_CONTENT_LENGTH bytes as if that were all. Asking for one
    byte more tells the two apart (reading past the limit raises 413 itself).
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    stream = request.stream
    body = bytearray()
    while chunk := stream.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise RequestEntityTooLarge()
    return bytes(body)


@bp.post("/danmaku")
def post_comment(room: str) -> tuple[dict[str, Any], int]:
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the comment as JSON with Content-Type: application/json; got {request.mimetype or 'none'!r}",
        )
    body = _body()
    try:
        fields = jsonlimits.loads(body)
    except jsonlimits.TooDeep as error:
        raise ApiError(400, "too_deep", f'{error}; send one flat JSON object, e.g. {{"text": "hello"}}') from error
    except ValueError as error:
        raise ApiError(
            400, "malformed_json", f'the body is not valid JSON ({error}); send e.g. {{"text": "hello"}}'
        ) from error
    comment = submit(fields, address=client_address(), room=room)
    return {"id": comment.id}, 202


@bp.get("/history")
def history(room: str) -> dict[str, Any]:
    room = room_or_404(room)
    kept = services().history
    raw = request.args.get("limit", str(kept.size))
    if not raw.isdecimal() or not 1 <= int(raw) <= kept.size:
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {kept.size}; got {raw!r}")
    return {"items": [comment.to_dict() for comment in kept.recent(room, int(raw))]}
