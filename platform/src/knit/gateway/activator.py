"""Each Revision's ready instances, their free slots, and the requests waiting for one.

Knative's activator: a request for a Revision with no ready instance (scaled to zero,
or still starting) waits here until one is ready, and asks for one at once (`on_demand`,
the autoscaler's "poke"); after the timeout it fails with a message saying why, and at
once when the Revision is known to be failing (its instances crash before they are ready).
`containerConcurrency` is a hard limit per instance: a request waits for a free slot
rather than go to a full instance. Requests wait in arrival order.

An instance that refuses a connection (it stopped before the runtime said so, as a pod does
before its EndpointSlice catches up) is passed over for `REFUSED_BACKOFF` seconds, and the
gateway tries the request elsewhere, as Knative's activator retries a refused dial.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

REFUSED_BACKOFF = 0.5  # seconds an instance that refused a connection is passed over


@dataclass(eq=False)
class Endpoint:
    """One ready instance as the gateway sees it."""

    name: str
    host: str
    port: int
    in_flight: int = 0  # requests the gateway sent it that are not done
    proxied: int = 0  # requests HAProxy sent it straight, as its stats last said (HAProxy data plane)
    refused_until: float = 0.0  # time.monotonic() until which it is passed over, having refused a connection

    @property
    def busy(self) -> int:
        return self.in_flight + self.proxied


class Unavailable(Exception):
    """No instance could take the request in time; the message says why."""


class RevisionBackend:
    def __init__(
        self,
        revision: str,
        container_concurrency: int,
        on_demand: Callable[[], None] = lambda: None,
        on_start: Callable[[], None] = lambda: None,
        on_finish: Callable[[], None] = lambda: None,
    ) -> None:
        self.revision = revision
        self.container_concurrency = container_concurrency
        self.on_demand = on_demand
        self.on_start, self.on_finish = on_start, on_finish  # the autoscaler's meter
        self.endpoints: list[Endpoint] = []
        self.failure: str | None = None  # set by the runtime while the Revision is failing
        self.in_flight = 0  # requests in this Revision's hands, waiting ones included
        self._waiters: deque[asyncio.Future[Endpoint]] = deque()
        self._turn = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints.append(endpoint)
        self.failure = None
        self._hand_out()

    def remove(self, endpoint: Endpoint) -> None:
        """Stop sending new requests to an instance; those it has finish normally."""
        if endpoint in self.endpoints:
            self.endpoints.remove(endpoint)

    def _usable(self) -> list[Endpoint]:
        now = time.monotonic()
        return [e for e in self.endpoints if e.refused_until <= now]

    def _free(self) -> Endpoint | None:
        limit = self.container_concurrency
        candidates = [e for e in self._usable() if not limit or e.in_flight < limit]
        if not candidates:
            return None
        # Least busy first; among equals take turns, so idle instances share the load.
        start = next(self._turn) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda e: e.in_flight)

    def _hand_out(self) -> None:
        while self._waiters:
            if self._waiters[0].done():  # timed out meanwhile
                self._waiters.popleft()
                continue
            endpoint = self._free()
            if endpoint is None:
                return
            endpoint.in_flight += 1
            self._waiters.popleft().set_result(endpoint)

    async def acquire(self, timeout: float) -> Endpoint:
        """An instance with a free slot, reserved for the caller, who must `release` it."""
        self.in_flight += 1
        self.on_start()
        endpoint = self._free() if not self.waiting else None  # no overtaking those who wait
        if endpoint is not None:
            endpoint.in_flight += 1
            return endpoint
        if not self._usable():
            self.on_demand()
            if self.failure and not self.endpoints:  # known to be failing: say so now rather than after the timeout
                self.in_flight -= 1
                self.on_finish()
                raise Unavailable(f"revision {self.revision} is failing: {self.failure}")
        waiter: asyncio.Future[Endpoint] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(waiter)
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                if isinstance(error, TimeoutError):  # handed an instance just as time ran out
                    return waiter.result()
                self.release(waiter.result())
                raise
            waiter.cancel()
            self.in_flight -= 1
            self.on_finish()
            if isinstance(error, TimeoutError):
                raise Unavailable(self._why(timeout)) from None
            raise

    def release(self, endpoint: Endpoint) -> None:
        endpoint.in_flight -= 1
        self.in_flight -= 1
        self.on_finish()
        self._hand_out()

    def refuse(self, endpoint: Endpoint) -> None:
        """The instance refused a connection: its slot back, and no requests for a moment."""
        endpoint.refused_until = time.monotonic() + REFUSED_BACKOFF
        asyncio.get_running_loop().call_later(REFUSED_BACKOFF, self._hand_out)
        self.release(endpoint)

    def _why(self, timeout: float) -> str:
        if self.endpoints:
            return (
                f"every instance of revision {self.revision} was busy for {timeout:g}s "
                f"(containerConcurrency {self.container_concurrency}); try again or raise max-scale"
            )
        reason = f": {self.failure}" if self.failure else " (it is starting or scaling from zero)"
        return f"revision {self.revision} had no ready instance within {timeout:g}s{reason}"
