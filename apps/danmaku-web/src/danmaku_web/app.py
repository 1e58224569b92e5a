"""The application factory: settings, Socket.IO, the shared services and the blueprints."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from danmaku_web import api, errors, health, pages, settings, sink, sockets
from danmaku_web.dedup import RecentIds
from danmaku_web.history import History
from danmaku_web.publisher import KafkaPublisher, Publisher
from danmaku_web.ratelimit import RateLimiter
from danmaku_web.services import EXTENSION, Services


def create_app(config: Mapping[str, Any] | None = None, publisher: Publisher | None = None) -> Flask:
    """The danmaku-web app. `config` overrides the environment (see `settings`);
    `publisher` replaces Kafka (tests pass one that records what it was given)."""
    app = Flask("danmaku_web")
    app.config.update(settings.load(os.environ, config))
    conf = app.config
    socketio = SocketIO(
        app,
        async_mode=conf["ASYNC_MODE"],
        max_http_buffer_size=conf["MAX_CONTENT_LENGTH"],
        cors_allowed_origins=_origins(conf["CORS_ALLOWED_ORIGINS"]),
    )
    if conf["TRUSTED_PROXIES"]:
        # Wraps Socket.IO's middleware too, so both see the client's address, not the proxy's.
        hops = conf["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = Services(
        publisher=publisher or KafkaPublisher(conf["KAFKA_BOOTSTRAP_SERVERS"], conf["KAFKA_TIMEOUT_SECONDS"]),
        history=History(conf["HISTORY_SIZE"], conf["HISTORY_ROOMS"]),
        rate_limiter=RateLimiter(conf["RATE_LIMIT_BURST"], conf["RATE_LIMIT_PER_SECOND"]),
        recent_ids=RecentIds(conf["RECENT_EVENT_IDS"]),
        socketio=socketio,
    )
    errors.register(app)
    for blueprint in (pages.bp, api.bp, sink.bp, health.bp):
        app.register_blueprint(blueprint)
    sockets.register(socketio)
    return app


def _origins(value: str) -> str | list[str] | None:
    """None = same origin only (python-engineio's default), "*" = any, else a list."""
    if not value.strip():
        return None
    if value.strip() == "*":
        return "*"
    return [origin.strip() for origin in value.split(",") if origin.strip()]
