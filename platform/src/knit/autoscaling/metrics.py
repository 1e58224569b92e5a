"""What the autoscaler observes: Knative's bucketed averaging windows and the meter that
feeds them.

- `BucketWindow`: one-second buckets over a window (Knative's aggregation/bucketing.go).
  Values recorded in the same second add up (several instances report the same second);
  the average is over the buckets since the first write, at most the window, and seconds
  nobody reported count as 0, so it is a time-weighted average.
- `MetricWindow`: the two averages the KPA decides on, over the stable window and over the
  panic window (a percentage of the stable one).
- `MaxWindow`: the largest value recorded within a trailing duration (aggregation/max),
  for scale-down-delay and HPA stabilization.
- `ConcurrencyMeter`: fed by the data plane on every request start and finish (O(1)), or by
  sampled readings (`observe`, from HAProxy's stats); its `collect` gives the time-weighted
  average concurrency and the requests since the last one.
"""

from __future__ import annotations

import math
from collections import deque

BUCKET = 1.0  # seconds per bucket, Knative's config.BucketSize
PRECISION = 6  # Knative floors window averages to 6 digits, so float noise (70.0000001) never asks for 2 instances


class BucketWindow:
    def __init__(self, window: float, bucket: float = BUCKET) -> None:
        self.window, self.bucket = window, bucket
        self._buckets = [0.0] * max(1, round(window / bucket))
        self._total = 0.0
        self._first: int | None = None  # bucket number (time // bucket) of the first write
        self._last = 0  # bucket number of the latest write

    def _index(self, now: float) -> int:
        return math.floor(now / self.bucket)

    def record(self, now: float, value: float) -> None:
        number, size = self._index(now), len(self._buckets)
        if self._first is None:
            self._first = self._last = number
        elif number >= self._last + size:  # silent for a whole window: start afresh
            self._buckets = [0.0] * size
            self._total, self._first, self._last = 0.0, number, number
        elif number > self._last:
            # Clear the buckets the window slid past, so they read as 0 from now on.
            for skipped in range(self._last + 1, number + 1):
                self._total -= self._buckets[skipped % size]
                self._buckets[skipped % size] = 0.0
            self._last = number
        elif number <= self._last - size:
            return  # older than the window: late data cannot change the past
        self._first = min(self._first, number)
        self._buckets[number % size] += value
        self._total += value

    def is_empty(self, now: float) -> bool:
        """Nothing recorded within the window before `now` (Knative's ErrNoData)."""
        return self._first is None or self._index(now) - self._last >= len(self._buckets)

    def average(self, now: float) -> float:
        """The average over the window ending at `now`; 0 when it is empty.

        As Knative: over the buckets since the first write when that is less than a window
        ago, and over the buckets up to the last write when nothing came since (seconds with
        no report at the end are not yet counted as 0); gaps in between count as 0.
        """
        if self.is_empty(now):
            return 0.0
        assert self._first is not None
        number, size = max(self._index(now), self._last), len(self._buckets)
        total = self._total
        # Buckets written before `now` slid out of the window still hold values: leave them out.
        for expired in range(self._last - size + 1, number - size + 1):
            total -= self._buckets[expired % size]
        valid = min(self._last - self._first + 1, size - (number - self._last))
        return math.floor(max(total, 0.0) / valid * 10**PRECISION) / 10**PRECISION


class MetricWindow:
    """Stable and panic averages of one metric (concurrency or requests per second)."""

    def __init__(self, stable_window: float, panic_window: float) -> None:
        self.stable = BucketWindow(stable_window)
        self.panic = BucketWindow(panic_window)

    def record(self, now: float, value: float) -> None:
        self.stable.record(now, value)
        self.panic.record(now, value)

    def stable_average(self, now: float) -> float:
        return self.stable.average(now)

    def panic_average(self, now: float) -> float:
        return self.panic.average(now)


class MaxWindow:
    """The largest value recorded in the last `duration` seconds (a monotonic deque: O(1) amortized)."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._values: deque[tuple[float, float]] = deque()  # (time, value), values decreasing

    def record(self, now: float, value: float) -> None:
        while self._values and self._values[-1][1] <= value:
            self._values.pop()
        self._values.append((now, value))

    def current(self, now: float) -> float | None:
        while self._values and self._values[0][0] <= now - self.duration:
            self._values.popleft()
        return self._values[0][1] if self._values else None


class ConcurrencyMeter:
    """In-flight requests of one Revision (or instance), as the data plane sees them.

    Every method is O(1): the gateway calls the first two on each request.
    """

    def __init__(self, now: float) -> None:
        self.in_flight = 0
        self._since = self._changed = now
        self._area = 0.0  # integral of in-flight over time since the last collect
        self._requests = 0

    def _advance(self, now: float) -> None:
        now = max(now, self._changed)  # a clock read out of order must not count negative time
        self._area += self.in_flight * (now - self._changed)
        self._changed = now

    def request_started(self, now: float) -> None:
        self._advance(now)
        self.in_flight += 1
        self._requests += 1

    def request_finished(self, now: float) -> None:
        self._advance(now)
        self.in_flight = max(0, self.in_flight - 1)

    def observe(self, now: float, in_flight: int, requests: int) -> None:
        """A sampled reading, for a data plane that reports levels rather than each request:
        `in_flight` from now on, and `requests` started since the last reading."""
        self._advance(now)
        self.in_flight = max(0, in_flight)
        self._requests += requests

    def collect(self, now: float) -> tuple[float, int]:
        """(time-weighted average concurrency, requests started) since the last collect; starts a new period."""
        self._advance(now)
        elapsed = self._changed - self._since
        average = self._area / elapsed if elapsed > 0 else float(self.in_flight)
        requests = self._requests
        self._since, self._area, self._requests = self._changed, 0.0, 0
        return average, requests
