"""Per-client-address limits: a token bucket of comments and a cap on open Socket.IO connections.

Both count the client address (after ProxyFix, so behind the gateway the real peer), the
same key for HTTP and Socket.IO, so switching between them or reconnecting buys nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
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


class ConnectionLimit:
    """At most `per_address` connections open at once from one client address.

    Connections are remembered by their session id, so closing one counts down the
    address it was opened from, whatever the caller knows at that point.
    """

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._address_of: dict[str, str] = {}  # session id -> client address
        self._open: Counter[str] = Counter()  # client address -> connections open
        self._lock = threading.Lock()

    def open(self, session: str, address: str) -> bool:
        """Count the connection in, or False (nothing counted) when the address is at its cap."""
        with self._lock:
            if session in self._address_of:
                return True
            if self._open[address] >= self.per_address:
                return False
            self._address_of[session] = address
            self._open[address] += 1
            return True

    def close(self, session: str) -> None:
        with self._lock:
            address = self._address_of.pop(session, None)
            if address is None:
                return
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]

    def open_from(self, address: str) -> int:
        with self._lock:
            return self._open[address]
