"""PingSource: when it fires (cron schedules in a time zone, across daylight-saving changes;
descriptors; @every), computed from an injected `now`; and what a real ping process sends:
`ce-time` is the tick's scheduled time and consecutive events are the schedule's spacing
apart, read from the events themselves, never from when they arrived.

The rules are robfig/cron's, the library behind Knative's PingSource (docs/eventing.md).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from knit.eventing import conversion
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.ping import CONFIG_ENV, PingConfig, after_firing, next_fire, ping_event, schedule_zone
from knit.host import die_with_parent, free_port
from knit.testing.harness import Answer, ReceivedEvent, ScriptedSink

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HANG = 30.0  # only catches a hang: every wait below ends on a condition


def fires(schedule: str, zone: ZoneInfo, now: datetime, count: int) -> list[str]:
    """The next `count` fire times after `now`, each counted from the one before, in UTC."""
    times, after = [], now
    for _ in range(count):
        after = next_fire(schedule, zone, after)
        times.append(after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return times


def spacing(times: list[datetime]) -> list[timedelta]:
    """The gaps between consecutive times, in real (UTC) time: Python subtracts two times of one
    zone on the wall clock, which would make 01:00 EDT and 01:00 EST the same."""
    return [later.astimezone(UTC) - earlier.astimezone(UTC) for earlier, later in itertools.pairwise(times)]


def local(zone: ZoneInfo, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=zone)  # type: ignore[misc]


def chain(schedule: str, zone: ZoneInfo, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `now`, as aware datetimes."""
    ticks = [next_fire(schedule, zone, now)]
    while len(ticks) < count:
        ticks.append(next_fire(schedule, zone, ticks[-1]))
    return ticks


# --- cron in a time zone -----------------------------------------------------------------------------


def test_a_daily_cron_fires_at_its_wall_clock_time_in_its_zone_whatever_the_offset():
    # Given "every day at 09:00" in Berlin, asked on the Friday before summer time starts
    now = local(BERLIN, 2024, 3, 29, 12, 0)

    # Then it fires at 09:00 Berlin time each day: 08:00 UTC in winter (CET), 07:00 UTC in summer (CEST)
    assert fires("0 9 * * *", BERLIN, now, 3) == [
        "2024-03-30T08:00:00Z",
        "2024-03-31T07:00:00Z",
        "2024-04-01T07:00:00Z",
    ]


@pytest.mark.parametrize("schedule", ["0 2 * * *", "30 2 * * *"])
def test_a_time_the_clock_skips_when_summer_time_starts_does_not_fire_that_day(schedule):
    # Given a daily schedule in the hour Berlin's clocks skip (02:00 -> 03:00 on 2024-03-31)
    now = local(BERLIN, 2024, 3, 30, 0, 0)

    # Then it fires the day before and the day after, and not at 03:00 instead (robfig/cron
    # skips it; croniter alone would fire at 03:00)
    minute = int(schedule.split()[0])
    assert chain(schedule, BERLIN, now, 2) == [
        local(BERLIN, 2024, 3, 30, 2, minute),
        local(BERLIN, 2024, 4, 1, 2, minute),
    ]


def test_an_hourly_cron_goes_from_one_to_three_oclock_when_summer_time_starts():
    now = local(BERLIN, 2024, 3, 31, 0, 30)

    assert [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in chain("0 * * * *", BERLIN, now, 3)] == [
        "01:00 CET",
        "03:00 CEST",
        "04:00 CEST",
    ]


def test_a_time_the_clock_shows_twice_when_summer_time_ends_fires_twice():
    # Given "every day at 01:30" in New York, where 01:00-02:00 happens twice on 2024-11-03
    now = local(NEW_YORK, 2024, 11, 2, 12, 0)

    # Then that day it fires at 01:30 EDT and again an hour later at 01:30 EST, as robfig/cron does
    assert fires("30 1 * * *", NEW_YORK, now, 4) == [
        "2024-11-03T05:30:00Z",  # 01:30 EDT
        "2024-11-03T06:30:00Z",  # 01:30 EST
        "2024-11-04T06:30:00Z",
        "2024-11-05T06:30:00Z",
    ]


def test_an_hourly_cron_fires_every_real_hour_through_the_repeated_hour():
    now = local(NEW_YORK, 2024, 11, 3, 0, 15)

    ticks = chain("0 * * * *", NEW_YORK, now, 4)

    assert [t.astimezone(NEW_YORK).strftime("%H:%M %Z") for t in ticks] == [
        "01:00 EDT",
        "01:00 EST",
        "02:00 EST",
        "03:00 EST",
    ]
    assert spacing(ticks) == [timedelta(hours=1)] * 3


def test_a_fire_time_is_strictly_after_now_even_when_now_is_on_the_schedule():
    now = local(BERLIN, 2024, 6, 1, 12, 0)
    assert next_fire("0 12 * * *", BERLIN, now) == local(BERLIN, 2024, 6, 2, 12, 0)
    assert next_fire("*/5 * * * *", BERLIN, now + timedelta(microseconds=1)) == local(BERLIN, 2024, 6, 1, 12, 5)


# --- descriptors and @every --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@hourly", "2024-02-28T23:00:00+01:00"),
        ("@daily", "2024-02-29T00:00:00+01:00"),
        ("@midnight", "2024-02-29T00:00:00+01:00"),
        ("@weekly", "2024-03-03T00:00:00+01:00"),  # Sunday
        ("@monthly", "2024-03-01T00:00:00+01:00"),
        ("@yearly", "2025-01-01T00:00:00+01:00"),
        ("@annually", "2025-01-01T00:00:00+01:00"),
    ],
)
def test_a_descriptor_fires_at_the_start_of_its_period_in_the_sources_zone(schedule, expected):
    now = local(BERLIN, 2024, 2, 28, 22, 17, 5)  # a Wednesday, in a leap year
    assert next_fire(schedule, BERLIN, now) == datetime.fromisoformat(expected)


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [("@every 1s", 1), ("@every 90s", 90), ("@every 1m30s", 90), ("@every 2h", 7200), ("@every 1500ms", 1)],
)
def test_every_counts_whole_seconds_from_now_cut_to_the_second(schedule, seconds):
    # robfig/cron: the interval is cut to whole seconds, and each fire time falls on a whole second
    now = datetime(2024, 3, 31, 0, 59, 59, 734_000, tzinfo=UTC)
    assert next_fire(schedule, BERLIN, now) == datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC) + timedelta(seconds=seconds)


def test_every_ignores_the_zone_and_daylight_saving():
    now = local(BERLIN, 2024, 3, 31, 1, 30)
    ticks = chain("@every 30m", BERLIN, now, 2)
    assert [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in ticks] == ["03:00 CEST", "03:30 CEST"]


# --- after a tick fired ---------------------------------------------------------------------------------


def test_ticks_missed_while_the_process_could_not_run_are_skipped_not_sent_in_a_burst():
    # Given an hourly tick due at 10:00 that fired only at 13:20 (the machine was asleep)
    tick, now = datetime(2024, 6, 1, 10, 0, tzinfo=UTC), datetime(2024, 6, 1, 13, 20, 4, tzinfo=UTC)

    # Then the next one is 14:00, not 11:00
    assert after_firing("@hourly", UTC, tick, now) == datetime(2024, 6, 1, 14, 0, tzinfo=UTC)
    assert after_firing("@every 1s", UTC, tick, now) == datetime(2024, 6, 1, 13, 20, 5, tzinfo=UTC)


def test_a_tick_that_fired_a_little_early_is_not_sent_twice():
    tick = datetime(2024, 6, 1, 10, 0, 5, tzinfo=UTC)
    woke = tick - timedelta(milliseconds=3)  # the wall clock and the loop's clock disagree slightly

    assert after_firing("@every 1s", UTC, tick, woke) == tick + timedelta(seconds=1)
    assert after_firing("* * * * *", UTC, tick, woke) == datetime(2024, 6, 1, 10, 1, tzinfo=UTC)


# --- the zone when the source names none -----------------------------------------------------------------


def test_without_a_timezone_the_machines_zone_is_used_with_its_daylight_saving_rules(monkeypatch):
    # Given a machine in Berlin (TZ) and a source with no timezone, asked in winter
    monkeypatch.setenv("TZ", "Europe/Berlin")
    now = datetime(2024, 3, 30, 10, 0, tzinfo=UTC)

    # Then the next day's 09:00 is in summer time: 07:00 UTC, not winter's offset carried over
    assert next_fire("0 9 * * *", schedule_zone(None), now) == datetime(2024, 3, 31, 7, 0, tzinfo=UTC)


def test_a_named_timezone_wins_over_the_machines(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert schedule_zone("America/New_York") == NEW_YORK


# --- the event of a tick ----------------------------------------------------------------------------------


def test_the_event_of_a_tick_carries_the_ticks_scheduled_time_in_rfc_3339_utc():
    config = PingConfig("tick", "default", "30 1 * * *", "http://127.0.0.1:1/", timezone="America/New_York")
    tick = next_fire(config.schedule, NEW_YORK, local(NEW_YORK, 2024, 11, 3, 1, 45))  # the second 01:30

    headers = conversion.from_event(ping_event(config, tick)).headers

    assert headers["ce-time"] == "2024-11-03T06:30:00Z"


# --- a real ping process delivering to a real sink ---------------------------------------------------------


class PingProcess:
    """`python -m knit.eventing.ping` as the local runtime starts it, its output in `log_path`."""

    def __init__(self, config: PingConfig, log_path: Path) -> None:
        self.log_path = log_path
        port = free_port()
        env = {**os.environ, CONFIG_ENV: config.to_json(), "PORT": str(port)}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knit.eventing.ping"], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str) -> None:
        deadline = time.monotonic() + HANG
        while text not in self.log():
            assert self.process.poll() is None, f"the ping process exited ({self.process.returncode}):\n{self.log()}"
            assert time.monotonic() < deadline, f"{text!r} never appeared in the ping log:\n{self.log()}"
            time.sleep(0.02)


@pytest.fixture
def pings(tmp_path: Path) -> Iterator[Callable[..., PingProcess]]:
    started: list[PingProcess] = []

    def start(sink: str, schedule: str = "@every 1s", **settings: object) -> PingProcess:
        config = PingConfig(name="tick", namespace="default", schedule=schedule, sink=sink, **settings)  # type: ignore[arg-type]
        process = PingProcess(config, tmp_path / f"ping-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(HANG)


def scheduled_times(events: list[ReceivedEvent]) -> list[datetime]:
    return [datetime.fromisoformat(event.headers["ce-time"].replace("Z", "+00:00")) for event in events]


@pytest.mark.integration
def test_a_real_ping_process_sends_events_timed_at_their_ticks_one_second_apart(pings, event_sink):
    # Given a ping process on "@every 1s" sending JSON data to a real sink
    pings(event_sink.url, content_type="application/json", data='{"tick": true}')

    # When it has sent five events
    events = event_sink.wait_for(5, timeout=HANG)[:5]

    # Then each carries its tick's scheduled time (a whole second, RFC 3339 in UTC), and the
    # ticks are exactly one second apart, whenever the events happened to arrive
    times = scheduled_times(events)
    assert all(event.headers["ce-time"].endswith("Z") for event in events)
    assert all(moment.microsecond == 0 for moment in times)
    assert spacing(times) == [timedelta(seconds=1)] * 4
    assert len({event.id for event in events}) == 5
    assert {(e.headers["ce-type"], e.headers["ce-source"], e.headers["content-type"], e.body) for e in events} == {
        ("dev.knative.sources.ping", "/apis/v1/namespaces/default/pingsources/tick", "application/json",
         b'{"tick": true}'),
    }  # fmt: skip


@pytest.mark.integration
def test_a_sink_slower_than_the_schedule_does_not_hold_it_back(pings):
    # Given a sink that takes 2.5 s to answer, and a ping every second
    sink = ScriptedSink(delay=2.5, lane_of=lambda _: None)
    try:
        pings(sink.url)

        # When the first four ticks were accepted one second apart (answers may come in any order)
        deadline = time.monotonic() + HANG
        while spacing(first := sorted(scheduled_times(list(sink.events)))[:4]) != [timedelta(seconds=1)] * 3:
            assert time.monotonic() < deadline, f"the first ticks accepted are {first}, not one second apart"
            time.sleep(0.05)

        # Then their deliveries overlapped: each tick is sent on its own, as robfig/cron runs each job
        assert sink.max_in_flight >= 2
    finally:
        sink.close()


@pytest.mark.integration
def test_a_ping_under_way_when_the_process_is_stopped_is_delivered_before_it_exits(pings):
    # Given a sink that holds the first ping it gets until the test lets it answer
    arrived, answer = threading.Event(), threading.Event()

    def hold_the_first(event: ReceivedEvent, number: int) -> Answer:
        if number == 1:
            arrived.set()
            answer.wait(HANG)
        return Answer(202)

    sink = ScriptedSink(respond=hold_the_first)
    try:
        ping = pings(sink.url)
        assert arrived.wait(HANG)

        # When the process gets SIGTERM while that delivery is under way
        ping.process.send_signal(signal.SIGTERM)
        ping.wait_for_log("stopping: 1 ping(s) under way finish first")
        still_running = ping.process.poll() is None
        answer.set()

        # Then it waited for the answer, and exits cleanly with the ping delivered
        assert still_running
        assert ping.process.wait(HANG) == 0, ping.log()  # on its own: a second SIGTERM could land after its loop
        assert sink.attempts[0].status == 202
        assert "was not delivered" not in ping.log()
    finally:
        answer.set()
        sink.close()


@pytest.mark.integration
def test_a_ping_the_sink_keeps_refusing_is_logged_with_its_tick_and_the_next_ones_still_go(pings):
    # Given a sink that answers 503 to everything for the first tick, then 202
    first_tick: list[str] = []

    def refuse_the_first_tick(event: ReceivedEvent, _: int) -> int:
        first_tick[:] = first_tick or [event.headers["ce-time"]]
        return 503 if event.headers["ce-time"] == first_tick[0] else 202

    sink = ScriptedSink(respond=refuse_the_first_tick)
    try:
        ping = pings(sink.url, delivery=DeliveryPolicy(retry=2, backoff_policy="linear", backoff_delay=0.05))

        # When later ticks are accepted
        sink.wait_for(2, timeout=HANG)
        tick = datetime.fromisoformat(first_tick[0].replace("Z", "+00:00"))
        ping.wait_for_log(f"the ping of {tick.isoformat()} was not delivered")

        # Then the first tick was tried three times (1 + 2 retries), and the log names it and why
        assert [a.status for a in sink.attempts if a.event.headers["ce-time"] == first_tick[0]] == [503, 503, 503]
        assert f"{sink.url} answered 503" in ping.log()
    finally:
        sink.close()
