"""Fixtures for danmaku-web's tests: the app with a recording publisher, and its clients.

The app verifies who sends to /events as it does on knit: tokens from a test issuer
(knit.testing.identity), the processor's identity allowed, this Service's audience."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient
from werkzeug.test import TestResponse

from danmaku_events import events
from danmaku_events.comment import Comment
from danmaku_web.app import create_app
from danmaku_web.publisher import Unavailable
from knit.eventing.identity import audience_of, service_identity
from knit.testing.identity import TestIssuer

# As the local runtime names them for manifests/app.
PROCESSOR = service_identity("default", "danmaku-processor")
WEB_AUDIENCE = audience_of("Service", "default", "danmaku-web")


class RecordingPublisher:
    """Stands in for Kafka: keeps what it was given, or fails like an unreachable broker."""

    def __init__(self) -> None:
        self.published: list[tuple[Comment, str | None]] = []
        self.failure: str | None = None

    def publish(self, comment: Comment, sender: str | None) -> None:
        if self.failure:
            raise Unavailable(self.failure)
        self.published.append((comment, sender))

    def problem(self) -> str | None:
        return self.failure


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def event_auth_settings(issuer: TestIssuer) -> dict[str, str]:
    """The settings that make the app verify senders with `issuer`'s keys."""
    return {
        "OIDC_ISSUER": issuer.name,
        "OIDC_JWKS": str(issuer.jwks_path),
        "AUDIENCE": WEB_AUDIENCE,
        "EVENT_SENDERS": PROCESSOR,
    }


@pytest.fixture
def app(publisher: RecordingPublisher, oidc_issuer: TestIssuer) -> Flask:
    return create_app(
        {
            "ASYNC_MODE": "threading",
            "RATE_LIMIT_BURST": 3,
            "RATE_LIMIT_PER_SECOND": 0.5,
            "HISTORY_SIZE": 20,
            **event_auth_settings(oidc_issuer),
        },
        publisher=publisher,
    )


@pytest.fixture
def processor_token(oidc_issuer: TestIssuer) -> dict[str, str]:
    """The Authorization header the processor sends /events."""
    return oidc_issuer.authorization(PROCESSOR, WEB_AUDIENCE)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def connect(app: Flask, client: FlaskClient) -> Callable[[str], SocketIOTestClient]:
    """Connects a Socket.IO test client and joins it to a room."""

    def connect_to(room: str) -> SocketIOTestClient:
        socket = app.extensions["socketio"].test_client(app, flask_test_client=client)
        assert socket.emit("join", {"room": room}, callback=True)["ok"]
        return socket

    return connect_to


@pytest.fixture
def deliver(client: FlaskClient, processor_token: dict[str, str]) -> Callable[..., TestResponse]:
    """POSTs a CloudEvent to /events in binary mode, as the processor does: with its token,
    unless `headers` say otherwise (`Authorization` absent from them: no token at all)."""

    def post(event: CloudEvent, headers: dict[str, str] | None = None) -> TestResponse:
        message = events.to_http(event)
        auth = processor_token if headers is None else headers
        return client.post("/events", data=message.body, headers={**dict(message.headers), **auth})

    return post


@pytest.fixture
def received() -> Callable[[SocketIOTestClient], list[tuple[str, dict]]]:
    """The (event name, payload) pairs a test client got since last asked."""

    def events_of(socket: SocketIOTestClient) -> list[tuple[str, dict]]:
        return [(packet["name"], packet["args"][0]) for packet in socket.get_received()]

    return events_of
