"""Handing accepted comments to Kafka, behind a two-method interface tests can replace.

An accepted comment becomes a `dev.danmaku.comment.submitted` CloudEvent in Kafka binary
content mode on topic `danmaku.comments`, key = room. `publish` returns only after the
broker acknowledged the record, so an acknowledged comment is durable.
"""

from __future__ import annotations

import socket
import threading
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from danmaku_events import events
from danmaku_events.comment import Comment

_LINGER_MS = 0  # send at once; records still batch while a send is in flight


class Unavailable(RuntimeError):
    """The comment could not be handed over; the message names the address that failed."""


class Publisher(Protocol):
    def publish(self, comment: Comment, sender: str | None) -> None:
        """Hand the comment over or raise Unavailable; `sender` is the Socket.IO sid, if any."""

    def problem(self) -> str | None:
        """Why comments cannot be published right now, or None when they can."""


class KafkaPublisher:
    def __init__(self, bootstrap_servers: str, timeout: float) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get_producer(self) -> KafkaProducer:
        # Created on first use, not at startup, so the web comes up (and /readyz says why it
        # is not ready) while Kafka is still starting. Callers give up after one timeout
        # rather than queueing behind each other's attempts to reach a dead broker.
        if not self._lock.acquire(timeout=self.timeout):
            raise KafkaTimeoutError(f"still connecting to Kafka after {self.timeout:g} s")
        try:
            if self._producer is None:
                timeout_ms = int(self.timeout * 1000)
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id="danmaku-web",
                    acks="all",
                    linger_ms=_LINGER_MS,
                    # Every wait is bounded by one timeout, so a dead broker means a prompt 503.
                    bootstrap_timeout_ms=timeout_ms,
                    max_block_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms + _LINGER_MS,
                )
            return self._producer
        finally:
            self._lock.release()

    def publish(self, comment: Comment, sender: str | None) -> None:
        record = events.to_kafka_record(events.submitted(comment, sender=sender))
        try:
            self._get_producer().send(
                events.TOPIC, key=record.key, value=record.value, headers=list(record.headers.items())
            ).get(timeout=self.timeout)
        except KafkaError as error:
            raise Unavailable(
                f"Kafka at {self.bootstrap_servers} did not acknowledge the comment within "
                f"{self.timeout:g} s ({error}); try again shortly, and "
                "if it persists check that KAFKA_BOOTSTRAP_SERVERS points at a running broker"
            ) from error

    def problem(self) -> str | None:
        failures = []
        for server in self.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                    return None
            except (OSError, ValueError) as error:
                failures.append(f"{server.strip()} ({error})")
        return f"no Kafka broker answered at {', '.join(failures)}; check KAFKA_BOOTSTRAP_SERVERS"
