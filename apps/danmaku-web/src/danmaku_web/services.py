"""The per-application objects that HTTP routes and Socket.IO handlers share."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_socketio import SocketIO

from danmaku_events.auth import Verifier
from danmaku_web.dedup import RecentIds
from danmaku_web.history import History
from danmaku_web.publisher import Publisher
from danmaku_web.ratelimit import RateLimiter

EXTENSION = "danmaku_web"


@dataclass(frozen=True)
class Services:
    publisher: Publisher
    history: History
    rate_limiter: RateLimiter
    recent_ids: RecentIds
    socketio: SocketIO
    event_senders: Verifier | None = None  # None: not configured, /events accepts nothing


def services() -> Services:
    """The current application's services (inside a request or Socket.IO event)."""
    return current_app.extensions[EXTENSION]
