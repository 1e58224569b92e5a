"""Fixtures for danmaku-web's tests: the app with a recording publisher, and its clients."""

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


@pytest.fixture
def app(publisher: RecordingPublisher) -> Flask:
    return create_app(
        {"ASYNC_MODE": "threading", "RATE_LIMIT_BURST": 3, "RATE_LIMIT_PER_SECOND": 0.5, "HISTORY_SIZE": 20},
        publisher=publisher,
    )


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
def deliver(client: FlaskClient) -> Callable[[CloudEvent], TestResponse]:
    """POSTs a CloudEvent to /events in binary mode, as the processor does."""

    def post(event: CloudEvent) -> TestResponse:
        message = events.to_http(event)
        return client.post("/events", data=message.body, headers=dict(message.headers))

    return post


@pytest.fixture
def received() -> Callable[[SocketIOTestClient], list[tuple[str, dict]]]:
    """The (event name, payload) pairs a test client got since last asked."""

    def events_of(socket: SocketIOTestClient) -> list[tuple[str, dict]]:
        return [(packet["name"], packet["args"][0]) for packet in socket.get_received()]

    return events_of
