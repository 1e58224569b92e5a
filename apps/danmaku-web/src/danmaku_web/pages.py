"""The page: `/` is the lobby room, `/r/<room>` any other room."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, render_template

from danmaku_events.comment import DEFAULT_ROOM
from danmaku_web.errors import room_or_404

bp = Blueprint("pages", __name__)

# Comment text only ever reaches the DOM as text; the policy is the second line of
# defence should that ever change: no inline or foreign script, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
def lobby() -> Response:
    return _page(DEFAULT_ROOM)


@bp.get("/r/<room>")
def room(room: str) -> Response:
    return _page(room_or_404(room))


def _page(room: str) -> Response:
    response = make_response(render_template("index.html", room=room))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
