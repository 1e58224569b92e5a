"""Dropping redelivered events: delivery to /events is at least once, display is once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class RecentIds:
    """Remembers the last `size` keys seen; older ones are forgotten to bound memory."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: Hashable) -> bool:
        """True the first time `key` is seen (within the last `size` keys), else False."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True
