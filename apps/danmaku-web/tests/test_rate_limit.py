"""Per-address limits: the token bucket (driven by a fake clock) and the connection cap."""

from __future__ import annotations

import pytest

from danmaku_web.app import create_app
from danmaku_web.ratelimit import ConnectionLimit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sender_may_send_its_burst_at_once_and_then_waits():
    limiter = RateLimiter(burst=3, rate=0.5, clock=Clock())
    assert [limiter.take("address 203.0.113.7") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("address 203.0.113.7") == pytest.approx(2.0)


def test_tokens_refill_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(burst=3, rate=0.5, clock=clock)
    for _ in range(3):
        limiter.take("address 203.0.113.7")
    clock.now += 2.0
    assert limiter.take("address 203.0.113.7") == 0.0
    assert limiter.take("address 203.0.113.7") == pytest.approx(2.0)


def test_senders_have_separate_buckets():
    limiter = RateLimiter(burst=1, rate=0.5, clock=Clock())
    limiter.take("address 203.0.113.7")
    assert limiter.take("address 198.51.100.20") == 0.0


def test_an_address_may_open_connections_up_to_its_cap_and_others_are_not_affected():
    limit = ConnectionLimit(per_address=2)
    assert limit.open("sid-1", "203.0.113.7") and limit.open("sid-2", "203.0.113.7")
    assert limit.open("sid-3", "203.0.113.7") is False
    assert limit.open("sid-4", "198.51.100.20") is True
    assert limit.open_from("203.0.113.7") == 2


def test_closing_a_connection_frees_a_place_for_its_address():
    limit = ConnectionLimit(per_address=1)
    limit.open("sid-1", "203.0.113.7")
    limit.close("sid-1")
    assert limit.open("sid-2", "203.0.113.7") is True


def test_a_refused_or_unknown_connection_closing_changes_nothing():
    limit = ConnectionLimit(per_address=1)
    limit.open("sid-1", "203.0.113.7")
    limit.open("sid-2", "203.0.113.7")  # refused
    limit.close("sid-2")
    limit.close("never-opened")
    assert limit.open_from("203.0.113.7") == 1


def test_beyond_max_senders_the_least_recent_sender_is_dropped():
    limiter = RateLimiter(burst=1, rate=0.5, clock=Clock(), max_senders=2)
    for sender in ("address 10.0.0.1", "address 10.0.0.2", "address 10.0.0.3"):
        limiter.take(sender)
    assert limiter.take("address 10.0.0.1") == 0.0  # dropped, so full again
    assert limiter.take("address 10.0.0.3") > 0


def _post_from(client, forwarded_for: str):
    return client.post("/api/rooms/music/danmaku", json={"text": "hello"}, headers={"X-Forwarded-For": forwarded_for})


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(publisher):
    # given one trusted proxy in front and a burst of 1
    app = create_app({"TRUSTED_PROXIES": 1, "RATE_LIMIT_BURST": 1}, publisher=publisher)
    client = app.test_client()
    # when two clients post through the proxy
    first, second = _post_from(client, "203.0.113.7"), _post_from(client, "198.51.100.20")
    # then
    assert (first.status_code, second.status_code) == (202, 202)


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(publisher):
    # given clients connect directly, so the header could be forged
    app = create_app({"RATE_LIMIT_BURST": 1}, publisher=publisher)
    client = app.test_client()
    # when
    first, second = _post_from(client, "203.0.113.7"), _post_from(client, "198.51.100.20")
    # then one address, one bucket
    assert (first.status_code, second.status_code) == (202, 429)
    assert "address 127.0.0.1" in second.json["error"]["message"]
