"""KafkaPublisher against an address where no broker listens: prompt, explicit failure."""

from __future__ import annotations

import time

import pytest

from danmaku_events.comment import Comment
from danmaku_web.publisher import KafkaPublisher, Unavailable

NOWHERE = "127.0.0.1:1"  # nothing listens on port 1


def test_publishing_without_a_broker_fails_within_the_timeout_naming_the_address():
    publisher = KafkaPublisher(NOWHERE, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"Kafka at 127\.0\.0\.1:1 did not acknowledge"):
        publisher.publish(Comment(id="3f2a9c", room="music", text="hello", ts=1), sender=None)
    # It gave up on its own 0.5 s timeout, not kafka-python's (30 s per request, 60 s to block): the
    # bound is far from both, so a loaded machine does not decide it.
    assert time.monotonic() - started < 20


def test_the_problem_without_a_broker_names_the_address_and_the_setting():
    problem = KafkaPublisher(NOWHERE, timeout=0.5).problem()
    assert problem.startswith("no Kafka broker answered at 127.0.0.1:1 (")
    assert "KAFKA_BOOTSTRAP_SERVERS" in problem
