"""The application factory: settings, Socket.IO, the shared services and the blueprints."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from danmaku_events.auth import subjects, verifier_from_settings
from danmaku_web import api, errors, health, pages, settings, sink, sockets
from danmaku_web.dedup import RecentIds
from danmaku_web.history import History
from danmaku_web.publisher import KafkaPublisher, Publisher
from danmaku_web.ratelimit import ConnectionLimit, RateLimiter
from danmaku_web.services import EXTENSION, Services


def create_app(config: Mapping[str, Any] | None = None, publisher: Publisher | None = None) -> Flask:
    """The danmaku-web app. `config` overrides the environment (see `settings`);
    `publisher` replaces Kafka (tests pass one that records what it was given)."""
    app = Flask("danmaku_web")
    app.config.update(settings.load(os.environ, config))
    conf = app.config
    if conf["SOCKETIO_MAX_BUFFER_SIZE"] < conf["MAX_CONTENT_LENGTH"]:
        raise ValueError(
            f"DANMAKU_WEB_SOCKETIO_MAX_BUFFER_SIZE ({conf['SOCKETIO_MAX_BUFFER_SIZE']}) must be at least "
            f"DANMAKU_WEB_MAX_CONTENT_LENGTH ({conf['MAX_CONTENT_LENGTH']}), or messages the app would refuse "
            "with an answer drop the connection instead; raise it"
        )
    socketio = SocketIO(
        app,
        async_mode=conf["ASYNC_MODE"],
        # Engine.IO's own limit drops the connection, so it is only the last resort; the
        # handlers refuse messages over MAX_CONTENT_LENGTH with an ack (see sockets).
        max_http_buffer_size=conf["SOCKETIO_MAX_BUFFER_SIZE"],
        cors_allowed_origins=_origins(conf["CORS_ALLOWED_ORIGINS"]),
        json=sockets.LimitedJSON,
        serializer=sockets.Packet,
    )
    _bound_websocket_messages(socketio, conf["SOCKETIO_MAX_BUFFER_SIZE"])
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
        event_senders=verifier_from_settings(
            conf["OIDC_ISSUER"], conf["OIDC_JWKS"], conf["AUDIENCE"], subjects(conf["EVENT_SENDERS"])
        ),
    )
    errors.register(app)
    for blueprint in (pages.bp, api.bp, sink.bp, health.bp):
        app.register_blueprint(blueprint)
    sockets.register(socketio, ConnectionLimit(conf["MAX_CONNECTIONS_PER_ADDRESS"]))
    return app


def _bound_websocket_messages(socketio: SocketIO, limit: int) -> None:
    """Make simple-websocket stop reading a WebSocket message at `limit` bytes.

    Engine.IO checks max_http_buffer_size only once a whole message has arrived, and
    simple-websocket buffers it without bound until then: one client could make this
    process hold a gigabyte. simple-websocket can close such a connection itself
    (code 1009, message too big) when given max_message_size, which Engine.IO's drivers
    never pass, so its WebSocket class is wrapped here, for this server only.
    """
    eio = socketio.server.eio
    websocket = eio._async.get("websocket")
    if websocket is None:
        return

    def bounded(handler: Any, server: Any) -> Any:
        socket = websocket(handler, server)
        if isinstance(getattr(socket, "server_args", None), dict):  # simple-websocket based drivers
            socket.server_args["max_message_size"] = limit
        return socket

    eio._async = {**eio._async, "websocket": bounded}


def _origins(value: str) -> str | list[str] | None:
    """None = same origin only (python-engineio's default), "*" = any, else a list."""
    if not value.strip():
        return None
    if value.strip() == "*":
        return "*"
    return [origin.strip() for origin in value.split(",") if origin.strip()]
