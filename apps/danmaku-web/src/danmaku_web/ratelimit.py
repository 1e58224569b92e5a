"""Per-sender rate limiting: one token bucket per Socket.IO session or client address."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Each sender may send `burst` comments at once, then `rate` per second.

    Buckets of senders not seen recently are dropped beyond `max_senders`; a dropped
    bucket comes back full, which is what an idle sender's bucket would be anyway.
    """

    def __init__(
        self, burst: int, rate: float, clock: Callable[[], float] = time.monotonic, max_senders: int = 10000
    ) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._max_senders = max_senders
        self._buckets: dict[str, tuple[float, float]] = {}  # sender -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, sender: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until the sender may send again."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(sender, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            if not wait:
                tokens -= 1
            self._buckets[sender] = (tokens, now)  # re-inserted: dict order = least recent first
            if len(self._buckets) > self._max_senders:
                del self._buckets[next(iter(self._buckets))]
            return wait

    def forget(self, sender: str) -> None:
        with self._lock:
            self._buckets.pop(sender, None)
