"""The recent published comments of each room, kept in memory for late joiners.

Bounded twice: `size` comments per room and `rooms` rooms, dropping the room that was
least recently active, since any client can name a new room.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from danmaku_events.comment import Comment


class History:
    def __init__(self, size: int, rooms: int) -> None:
        self.size = size
        self._max_rooms = rooms
        self._rooms: OrderedDict[str, deque[Comment]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, comment: Comment) -> None:
        with self._lock:
            comments = self._rooms.setdefault(comment.room, deque(maxlen=self.size))
            comments.append(comment)
            self._rooms.move_to_end(comment.room)
            if len(self._rooms) > self._max_rooms:
                self._rooms.popitem(last=False)

    def recent(self, room: str, limit: int | None = None) -> list[Comment]:
        """The last `limit` comments of the room (all kept when None), oldest first."""
        with self._lock:
            comments = list(self._rooms.get(room, ()))
        return comments if limit is None else comments[max(len(comments) - limit, 0) :]
