"""Timed minimum scale: `autoscaling.knit.dev/schedule`, in the spirit of timed HPA.

The annotation holds entries separated by `;`, each

    [CRON_TZ=<IANA zone> ]<minute> <hour> <day of month> <month> <day of week> for <duration>: <min-scale>

for example `0 9 * * 1-5 for 8h: 3; CRON_TZ=Asia/Tokyo 30 19 * * * for 2h: 10`: from every
firing of the cron expression, for the duration (Go style: "90m", "8h", "1h30m"), the Revision
keeps at least that many instances. Cron fields are the classic five (croniter's syntax:
ranges, lists, steps, names such as `mon-fri`), read in the machine's local time unless the
entry starts with `CRON_TZ=`. Where windows overlap, the largest min-scale wins; outside every
window the schedule asks for nothing (0). It raises min-scale, so like min-scale it only
applies while the Revision is routable, and max-scale still caps it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from dateutil.tz import tzlocal

from knit.durations import EXAMPLES, parse_duration

FORMAT = "<cron: 5 fields> for <duration>: <min-scale>"
_ENTRY = re.compile(r"(?:CRON_TZ=(?P<zone>\S+)\s+)?(?P<cron>.+?)\s+for\s+(?P<duration>\S+)\s*:\s*(?P<min_scale>\S+)")


class InvalidSchedule(ValueError):
    """A schedule entry is wrong; the message names the entry and says what to write."""


@dataclass(frozen=True)
class ScheduleEntry:
    cron: str
    duration: float  # seconds
    min_scale: int
    zone: str | None = None  # IANA name; None is the machine's local time

    def firing_before(self, now: float, local: tzinfo | None = None) -> float:
        """The last time (epoch seconds) the cron expression fired at or before `now`."""
        zone = ZoneInfo(self.zone) if self.zone else local or tzlocal()
        # Cron fires on whole minutes, and croniter's get_prev is strictly before its start:
        # starting one minute after `now`'s minute includes a firing at that very minute.
        start = datetime.fromtimestamp((now // 60 + 1) * 60, zone)
        return croniter(self.cron, start).get_prev(datetime).timestamp()

    def covers(self, now: float, local: tzinfo | None = None) -> bool:
        return now < self.firing_before(now, local) + self.duration


@dataclass(frozen=True)
class Schedule:
    entries: tuple[ScheduleEntry, ...] = ()

    def min_scale(self, now: float, local: tzinfo | None = None) -> int:
        """The largest min-scale of the windows open at `now`, 0 when none is.

        `local` is the zone of entries without CRON_TZ (default: the machine's, DST included).
        """
        return max((entry.min_scale for entry in self.entries if entry.covers(now, local)), default=0)

    @property
    def highest(self) -> int:
        return max((entry.min_scale for entry in self.entries), default=0)


def parse_schedule(text: str) -> Schedule:
    """The annotation's entries; an empty text is an empty schedule. Raises InvalidSchedule."""
    entries = []
    for number, raw in enumerate((part.strip() for part in text.split(";")), start=1):
        if raw:
            entries.append(_parse_entry(number, raw))
    return Schedule(tuple(entries))


def _parse_entry(number: int, raw: str) -> ScheduleEntry:
    def problem(what: str) -> InvalidSchedule:
        return InvalidSchedule(f'entry {number} ("{raw}"): {what}')

    match = _ENTRY.fullmatch(raw)
    if not match:
        raise problem(f"is not {FORMAT}, e.g. 0 9 * * 1-5 for 8h: 3")
    zone, cron = match["zone"], match["cron"]
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(f'CRON_TZ "{zone}" is not a known IANA time zone, e.g. Europe/Paris or UTC') from None
    fields = cron.split()
    if len(fields) != 5:
        raise problem(f'cron "{cron}" has {len(fields)} fields; it needs 5: minute hour day-of-month month day-of-week')
    try:
        croniter(cron)
    except (CroniterError, ValueError) as error:
        raise problem(f'cron "{cron}" is not valid: {error}') from None
    try:
        duration = parse_duration(match["duration"])
    except ValueError:
        raise problem(f'duration "{match["duration"]}" is not a duration; write it like {EXAMPLES}') from None
    if duration <= 0:
        raise problem(f'duration "{match["duration"]}" must be longer than 0s')
    if not re.fullmatch(r"[0-9]+", match["min_scale"]):
        raise problem(f'min-scale "{match["min_scale"]}" must be an integer >= 0')
    return ScheduleEntry(cron=" ".join(fields), duration=duration, min_scale=int(match["min_scale"]), zone=zone)
