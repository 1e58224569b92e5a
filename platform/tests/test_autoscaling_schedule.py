"""autoscaling.knit.dev/schedule: cron windows that raise min-scale."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from knit.autoscaling.schedule import InvalidSchedule, parse_schedule


def at(day, hour, minute=0, zone=UTC):
    """Epoch seconds of a day in March 2026 (the 2nd is a Monday) at hour:minute in `zone`."""
    return datetime(2026, 3, day, hour, minute, tzinfo=zone).timestamp()


WORKDAYS = parse_schedule("CRON_TZ=UTC 0 9 * * 1-5 for 8h: 3")


@pytest.mark.parametrize(
    ("now", "min_scale"),
    [
        (at(2, 8, 59), 0),  # Monday, a minute before
        (at(2, 9, 0), 3),  # the firing minute itself
        (at(2, 12, 30), 3),
        (at(2, 16, 59), 3),
        (at(2, 17, 0), 0),  # 8h later: closed
        (at(7, 10, 0), 0),  # Saturday: no firing
    ],
)
def test_min_scale_applies_from_each_firing_for_the_duration(now, min_scale):
    assert WORKDAYS.min_scale(now) == min_scale


@pytest.mark.parametrize(("now", "min_scale"), [(at(2, 12, 0), 3), (at(2, 13, 0), 10), (at(2, 14, 0), 3)])
def test_overlapping_windows_take_the_largest_min_scale(now, min_scale):
    schedule = parse_schedule("CRON_TZ=UTC 0 9 * * * for 8h: 3; CRON_TZ=UTC 30 12 * * * for 1h: 10")
    assert schedule.min_scale(now) == min_scale


def test_a_window_may_cross_midnight():
    schedule = parse_schedule("CRON_TZ=UTC 0 22 * * * for 4h: 2")
    assert (schedule.min_scale(at(3, 1, 30)), schedule.min_scale(at(3, 2, 0))) == (2, 0)


@pytest.mark.parametrize(("now", "min_scale"), [(at(2, 0, 30), 5), (at(2, 9, 30), 0)])
def test_cron_tz_reads_the_cron_in_that_zone(now, min_scale):
    schedule = parse_schedule("CRON_TZ=Asia/Tokyo 0 9 * * * for 1h: 5")  # 09:00 in Tokyo is 00:00 UTC
    assert schedule.min_scale(now) == min_scale


def test_without_cron_tz_the_cron_is_read_in_local_time():
    schedule = parse_schedule("0 9 * * * for 1h: 2")
    new_york = ZoneInfo("America/New_York")
    assert schedule.min_scale(at(2, 9, 30, new_york), local=new_york) == 2
    assert schedule.min_scale(at(2, 9, 30), local=new_york) == 0  # 09:30 UTC is 04:30 in New York


def test_an_empty_schedule_asks_for_nothing():
    assert parse_schedule("").min_scale(at(2, 9)) == 0


def test_a_schedule_entry_keeps_its_zone_cron_duration_and_min_scale():
    entry = parse_schedule(" CRON_TZ=Europe/Paris  30 19 * * *  for 1h30m :10 ;").entries[0]
    assert (entry.zone, entry.cron, entry.duration, entry.min_scale) == ("Europe/Paris", "30 19 * * *", 5400.0, 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 9 * * 1-5 8h: 3", 'entry 1 ("0 9 * * 1-5 8h: 3"): is not <cron: 5 fields> for <duration>: <min-scale>'),
        ("0 9 * * for 8h: 3", 'entry 1 ("0 9 * * for 8h: 3"): cron "0 9 * *" has 4 fields; it needs 5'),
        ("0 0 9 * * * for 8h: 3", 'cron "0 0 9 * * *" has 6 fields; it needs 5'),
        ("61 9 * * * for 8h: 3", 'entry 1 ("61 9 * * * for 8h: 3"): cron "61 9 * * *" is not valid'),
        ("0 9 * * * for 8x: 3", 'duration "8x" is not a duration; write it like "60s", "1m30s", "500ms", "1h"'),
        ("0 9 * * * for 0s: 3", 'duration "0s" must be longer than 0s'),
        ("0 9 * * * for 8h: many", 'min-scale "many" must be an integer >= 0'),
        ("CRON_TZ=Mars/Olympus 0 9 * * * for 1h: 1", 'CRON_TZ "Mars/Olympus" is not a known IANA time zone'),
        ("0 9 * * * for 1h: 1; every morning", 'entry 2 ("every morning"): is not <cron: 5 fields>'),
    ],
)
def test_a_bad_entry_is_named_with_what_is_wrong(text, message):
    with pytest.raises(InvalidSchedule) as error:
        parse_schedule(text)
    assert message in str(error.value)


@pytest.mark.parametrize(("duration", "valid"), [("0s", False), ("1s", True)])
def test_given_a_window_of_0s_or_1s_then_only_the_one_longer_than_0s_is_valid(duration, valid):
    text = f"0 9 * * * for {duration}: 3"
    if valid:
        assert parse_schedule(text).entries[0].duration == 1.0
    else:
        with pytest.raises(InvalidSchedule, match="must be longer than 0s"):
            parse_schedule(text)


def test_given_half_a_minute_before_the_firing_minute_then_the_window_is_not_open_yet():
    schedule = parse_schedule("CRON_TZ=UTC 1 9 * * * for 8h: 3")
    assert schedule.min_scale(at(2, 9, 0) + 30) == 0
    assert schedule.min_scale(at(2, 9, 1) + 30) == 3
