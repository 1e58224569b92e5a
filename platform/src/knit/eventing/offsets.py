"""Which offset of a partition is safe to commit: the lowest one not yet finished.

Records of a partition arrive in offset order but may finish out of order (unordered
delivery, retries). Committing the lowest unfinished offset keeps delivery at-least-once:
after a crash, everything not known to be finished is read again.
"""

from __future__ import annotations

from collections import OrderedDict


class PartitionOffsets:
    def __init__(self) -> None:
        self._unfinished: OrderedDict[int, bool] = OrderedDict()  # offset -> finished?
        self._next = -1  # the offset after the highest finished prefix, -1 before any record

    def started(self, offset: int) -> None:
        self._unfinished[offset] = False

    def finished(self, offset: int) -> None:
        if offset in self._unfinished:
            self._unfinished[offset] = True
        while self._unfinished:
            first, done = next(iter(self._unfinished.items()))
            if not done:
                break
            self._unfinished.popitem(last=False)
            self._next = first + 1

    @property
    def in_flight(self) -> int:
        return len(self._unfinished)

    def committable(self) -> int | None:
        """The offset to commit (Kafka's convention: the next record to read), or None."""
        return self._next if self._next >= 0 else None
