"""Delivery of result events to K_SINK, as HTTP binary-mode CloudEvents, each with the
processor's token for K_SINK's audience when the platform gave it one."""

from __future__ import annotations

import requests
from cloudevents.core.v1.event import CloudEvent

from danmaku_events import events
from danmaku_events.auth import TokenFile


class SinkError(Exception):
    """The sink did not accept an event; the message says what happened."""


class Sink:
    """One pooled session per process: its 10 connections cover gunicorn's 8 threads."""

    def __init__(self, url: str, timeout: float, token: TokenFile | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.token = token
        self._session = requests.Session()

    def send(self, event: CloudEvent) -> None:
        message = events.to_http(event)
        headers = dict(message.headers)
        if self.token is not None:
            try:  # read on every send: the platform replaces the file before the token expires
                headers |= self.token.authorization()
            except (OSError, ValueError) as error:
                raise SinkError(f"no token to send {event.get_id()!r} to {self.url} with: {error}") from error
        try:
            response = self._session.post(
                self.url,
                headers=headers,
                data=message.body,
                timeout=self.timeout,
                allow_redirects=False,  # a redirected POST would arrive as a GET, losing the event
            )
        except requests.RequestException as error:
            raise SinkError(f"could not deliver {event.get_id()!r} to {self.url}: {error}") from error
        if not 200 <= response.status_code < 300:
            raise SinkError(f"{self.url} refused {event.get_id()!r} with {response.status_code}: {response.text[:200]}")
