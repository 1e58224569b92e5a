"""Accepting a comment: rate limit, validate, stamp id and time, publish to Kafka.

Socket.IO `send` and `POST /api/rooms/<room>/danmaku` both end here, so both refuse
with the same codes and messages, and both draw on the same bucket per client address.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from flask import request

from danmaku_events.comment import Comment, InvalidComment, parse_comment
from danmaku_web.errors import ApiError
from danmaku_web.publisher import Unavailable
from danmaku_web.services import services


def client_address() -> str:
    """The address of the client behind the current request or Socket.IO event.

    `remote_addr` after ProxyFix: with DANMAKU_WEB_TRUSTED_PROXIES set, the address the
    trusted proxy appended to X-Forwarded-For; without, the TCP peer. Socket.IO events run
    in the environ of the request that opened the connection, so the same holds for them.
    """
    return request.remote_addr or "unknown"


def submit(fields: Any, *, address: str, sid: str | None = None, room: str | None = None) -> Comment:
    """Publish the comment and return it once Kafka has it; ApiError says why not.

    `address` is the client address the rate limit counts, `sid` the Socket.IO session a
    rejection goes back to, `room` the room from the URL, if any.
    """
    shared = services()
    wait = shared.rate_limiter.take(f"address {address}")
    if wait:
        limiter = shared.rate_limiter
        raise ApiError(
            429,
            "rate_limited",
            f"too many comments from address {address}: at most {limiter.burst} at once, then "
            f"{limiter.rate:g} per second, over HTTP and Socket.IO together; wait {wait:.1f} s and send again",
            retry_after=math.ceil(wait),
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
