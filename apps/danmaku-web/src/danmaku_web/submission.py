"""Accepting a comment: rate limit, validate, stamp id and time, publish to Kafka.

Socket.IO `send` and `POST /api/rooms/<room>/danmaku` both end here, so both refuse
with the same codes and messages.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from danmaku_events.comment import Comment, InvalidComment, parse_comment
from danmaku_web.errors import ApiError
from danmaku_web.publisher import Unavailable
from danmaku_web.services import services


def submit(fields: Any, *, sender: str, sid: str | None = None, room: str | None = None) -> Comment:
    """Publish the comment and return it once Kafka has it; ApiError says why not.

    `sender` names whoever the rate limit counts (a session or an address), `sid` is the
    Socket.IO session a rejection goes back to, `room` the room from the URL, if any.
    """
    shared = services()
    wait = shared.rate_limiter.take(sender)
    if wait:
        limiter = shared.rate_limiter
        raise ApiError(
            429,
            "rate_limited",
            f"too many comments from {sender}: at most {limiter.burst} at once, then "
            f"{limiter.rate:g} per second; wait {wait:.1f} s and send again",
            {"Retry-After": str(math.ceil(wait))},
        )
    try:
        comment = parse_comment(fields, id=uuid.uuid4().hex, ts=time.time_ns() // 1_000_000, room=room)
    except InvalidComment as error:
        raise ApiError(422, error.code, error.message) from error
    try:
        shared.publisher.publish(comment, sid)
    except Unavailable as error:
        raise ApiError(503, "unavailable", str(error)) from error
    return comment
