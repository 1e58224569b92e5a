"""What the storm sent and what its viewers received, and what that adds up to.

Pure: no clock and no network. Times are seconds on one monotonic clock, passed in by the
caller. Viewers are numbered per room (the room's index, then a slot in it); comments are
numbered in the order they are sent, and their text carries the run and that number, so a
viewer knows which comment reached it. The definitions of sent, delivered, lost and
duplicated are those of the package docstring.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PENDING, ACCEPTED, REFUSED, REJECTED, UNSENT = "pending", "accepted", "refused", "rejected", "unsent"
_FIRST_SOURCE = int(ipaddress.IPv4Address("127.0.0.2"))


def comment_text(run: str, number: int) -> str:
    return f"storm {run} {number}"


def comment_number(run: str, text: Any) -> int | None:
    """The number of this run's comment with `text`, or None for anyone else's."""
    match = re.fullmatch(r"storm (\S+) ([0-9]+)", text) if isinstance(text, str) else None
    return int(match[2]) if match and match[1] == run else None


def source_address(index: int) -> str:
    """The loopback address simulated person `index` connects from: 127.0.0.2, 127.0.0.3, …,
    skipping addresses that end in .0 or .255 (127.0.0.254 is followed by 127.0.1.1)."""
    base, offset = divmod(index + 1, 254)  # index 0 is the 2nd usable address of 127.0.0.x
    return str(ipaddress.IPv4Address(_FIRST_SOURCE - 1 + base * 256 + offset))


def percentile(counts: Mapping[int, int], percent: float) -> int | None:
    """The nearest-rank percentile of samples given as value -> how many times; None for none."""
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(percent / 100 * total))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to total")


@dataclass
class _Comment:
    room: int
    sent_at: float
    received: bytearray  # one flag per viewer slot of the room: 1 once it got the comment
    outcome: str = PENDING
    id: str = ""


@dataclass(frozen=True)
class Window:
    """One second of the storm: comments sent, first deliveries and their latency (ms)."""

    sent: int
    delivered: int
    p50: int | None
    p99: int | None


@dataclass(frozen=True)
class Summary:
    sent: int
    delivered: int
    lost: int
    duplicated: int
    p50: int | None
    p99: int | None
    instances_peak: int | None
    refused: dict[str, int] = field(default_factory=dict)  # the ack's error code -> comments
    rejected: int = 0  # by the processor (moderation)
    unanswered: int = 0
    stray: int = 0
    viewers_left: int = 0
    unsent: int = 0  # the poster's connection was gone: never emitted, not in `sent`

    def line(self) -> str:
        return (
            f"sent {self.sent}, delivered {self.delivered}, lost {self.lost}, duplicated {self.duplicated}, "
            f"p50 {_or_dash(self.p50)} ms, p99 {_or_dash(self.p99)} ms, "
            f"processor instances peak {_or_dash(self.instances_peak)}"
        )

    def not_counted(self) -> str:
        """What the app turned away or nobody answered: not counted as lost."""
        codes = ", ".join(f"{code} {count}" for code, count in sorted(self.refused.items()))
        refused = sum(self.refused.values())
        return (
            f"not counted as lost: refused by the app {refused}" + (f" ({codes})" if codes else "")
            + f", rejected by moderation {self.rejected}, unanswered {self.unanswered}; "
            f"stray deliveries {self.stray}, viewers dropped {self.viewers_left}"
            + (f"; not sent (poster's connection gone) {self.unsent}" if self.unsent else "")
        )  # fmt: skip


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


class Ledger:
    """Comments sent, how the app answered each, and which viewer got which.

    `viewers` is how many viewers each room has (room index -> count); they are joined
    before the first comment is sent.
    """

    def __init__(self, viewers: list[int]) -> None:
        self._viewers = list(viewers)
        self._comments: list[_Comment] = []
        self._by_id: dict[str, int] = {}  # the app's comment id -> number
        self._rejected_early: set[str] = set()  # rejections that came before the ack
        self._left: set[tuple[int, int]] = set()  # (room, slot) of viewers that dropped
        self._duplicated = 0
        self._stray = 0
        self._latency: Counter[int] = Counter()  # ms -> first deliveries, whole run
        self._window_latency: Counter[int] = Counter()
        self._window_sent = 0
        self._open: set[int] = set()  # comments not yet known to be settled

    def sent(self, room: int, at: float) -> int:
        """A comment to room index `room` is being sent at `at`; its number."""
        self._comments.append(_Comment(room, at, bytearray(self._viewers[room])))
        self._window_sent += 1
        number = len(self._comments) - 1
        self._open.add(number)
        return number

    def answered(self, number: int, ack: Any) -> None:
        """The app's ack to `send`: `{ok: true, id}` or `{ok: false, error: {code, message}}`."""
        comment = self._comments[number]
        if comment.outcome != PENDING:
            return
        if isinstance(ack, Mapping) and ack.get("ok") is True:
            comment.id = str(ack.get("id", ""))
            self._by_id[comment.id] = number
            comment.outcome = REJECTED if comment.id in self._rejected_early else ACCEPTED
            self._rejected_early.discard(comment.id)
            return
        error = ack.get("error") if isinstance(ack, Mapping) else None
        code = error.get("code") if isinstance(error, Mapping) else None
        comment.outcome = REFUSED
        comment.id = f"refused:{code or 'malformed_ack'}"

    def unsent(self, number: int) -> None:
        """Comment `number` could not be emitted after all (its poster's connection was gone)."""
        self._comments[number].outcome = UNSENT

    def rejected(self, comment_id: str) -> None:
        """The processor rejected the comment (moderation); it is not to be delivered."""
        number = self._by_id.get(comment_id)
        if number is None:
            self._rejected_early.add(comment_id)
        elif self._comments[number].outcome == ACCEPTED:
            self._comments[number].outcome = REJECTED

    def delivered(self, number: int, room: int, slot: int, at: float) -> None:
        """Viewer `slot` of room index `room` got comment `number` at `at`."""
        if not 0 <= number < len(self._comments):
            return  # a number this run never sent: not ours after all
        comment = self._comments[number]
        if comment.room != room:
            self._stray += 1
            return
        if comment.received[slot]:
            self._duplicated += 1
            return
        comment.received[slot] = 1
        latency = max(0, round((at - comment.sent_at) * 1000))
        self._latency[latency] += 1
        self._window_latency[latency] += 1

    def left(self, room: int, slot: int) -> None:
        """Viewer `slot` of room index `room` dropped before the end: it is expected nothing."""
        self._left.add((room, slot))

    def tick(self) -> Window:
        """What happened since the last tick; starts the next window."""
        window = Window(
            sent=self._window_sent,
            delivered=sum(self._window_latency.values()),
            p50=percentile(self._window_latency, 50),
            p99=percentile(self._window_latency, 99),
        )
        self._window_sent = 0
        self._window_latency = Counter()
        return window

    def settled(self) -> bool:
        """Whether nothing is on its way: every comment answered, and every accepted one either
        rejected or delivered to every viewer of its room still there."""
        self._open = {number for number in self._open if not self._is_settled(self._comments[number])}
        return not self._open

    def _is_settled(self, comment: _Comment) -> bool:
        if comment.outcome in (REFUSED, REJECTED, UNSENT):
            return True
        if comment.outcome == PENDING:
            return False
        return 0 not in comment.received or self._received(comment) == self._staying(comment.room)

    def _staying(self, room: int) -> int:
        return self._viewers[room] - sum(1 for left_room, _ in self._left if left_room == room)

    def _received(self, comment: _Comment) -> int:
        """How many viewers of the comment's room still there got it."""
        return comment.received.count(1) - sum(
            comment.received[slot] for room, slot in self._left if room == comment.room
        )

    def summary(self, instances_peak: int | None) -> Summary:
        delivered = lost = unanswered = rejected = unsent = 0
        refused: Counter[str] = Counter()
        staying = [self._staying(room) for room in range(len(self._viewers))]
        for comment in self._comments:
            if comment.outcome == ACCEPTED:
                got = self._received(comment)
                delivered += got
                lost += staying[comment.room] - got
            elif comment.outcome == REFUSED:
                refused[comment.id.removeprefix("refused:")] += 1
            elif comment.outcome == REJECTED:
                rejected += 1
            elif comment.outcome == UNSENT:
                unsent += 1
            else:
                unanswered += 1
        return Summary(
            sent=len(self._comments) - unsent,
            delivered=delivered,
            lost=lost,
            duplicated=self._duplicated,
            p50=percentile(self._latency, 50),
            p99=percentile(self._latency, 99),
            instances_peak=instances_peak,
            refused=dict(refused),
            rejected=rejected,
            unanswered=unanswered,
            stray=self._stray,
            viewers_left=len(self._left),
            unsent=unsent,
        )
