"""The autoscaler's inputs: bucketed averaging windows, the max window, the concurrency meter."""

import pytest

from knit.autoscaling.metrics import BucketWindow, ConcurrencyMeter, MaxWindow, MetricWindow


def fed(window: BucketWindow, samples: dict[float, float]) -> BucketWindow:
    for now, value in samples.items():
        window.record(now, value)
    return window


def test_a_steady_value_averages_to_itself():
    window = fed(BucketWindow(60.0), {float(second): 7.0 for second in range(100, 200)})
    assert window.average(199.0) == 7.0


def test_values_of_the_same_second_add_up_as_instances_report_the_same_second():
    window = fed(BucketWindow(6.0), {})
    for second in range(6):
        window.record(100.0 + second, 3.0)  # instance a
        window.record(100.5 + second, 5.0)  # instance b
    assert window.average(105.0) == 8.0


def test_before_a_full_window_the_average_is_over_the_seconds_since_the_first_report():
    window = fed(BucketWindow(60.0), {100.0: 10.0, 101.0: 20.0, 102.0: 30.0})
    assert window.average(102.0) == 20.0


def test_seconds_nobody_reported_between_reports_count_as_zero():
    window = fed(BucketWindow(10.0), {100.0: 10.0, 109.0: 10.0})
    assert window.average(109.0) == 2.0


def test_reports_older_than_the_window_leave_the_average():
    window = fed(BucketWindow(6.0), {float(second): 10.0 if second < 103 else 40.0 for second in range(100, 112)})
    assert window.average(111.0) == 40.0


def test_when_reports_stop_the_average_is_over_the_reported_seconds_left_in_the_window():
    # as Knative: the seconds after the last report are not yet counted as zeros
    window = fed(BucketWindow(10.0), {float(second): 10.0 if second < 105 else 20.0 for second in range(100, 110)})
    assert (window.average(109.0), window.average(114.0), window.average(118.0)) == (15.0, 20.0, 20.0)


def test_a_window_without_reports_is_empty_and_reads_zero():
    window = fed(BucketWindow(10.0), {100.0: 10.0})
    assert (window.is_empty(105.0), window.is_empty(110.0), window.average(110.0)) == (False, True, 0.0)
    assert BucketWindow(10.0).average(0.0) == 0.0


def test_after_a_silent_window_averaging_starts_afresh():
    window = fed(BucketWindow(10.0), {100.0: 50.0, 200.0: 4.0})
    assert window.average(200.0) == 4.0


def test_late_reports_older_than_the_window_are_ignored():
    window = fed(BucketWindow(10.0), {100.0: 1.0, 120.0: 6.0, 105.0: 1000.0})
    assert window.average(120.0) == 6.0


def test_averages_are_floored_to_six_digits_so_float_noise_never_asks_for_one_more_instance():
    window = fed(BucketWindow(3.0), {100.0: 70.0000000001, 101.0: 70.0, 102.0: 70.0})
    assert window.average(102.0) == 70.0


def test_the_panic_average_follows_a_step_faster_than_the_stable_one():
    window = MetricWindow(stable_window=60.0, panic_window=6.0)
    for second in range(1000, 1060):
        window.record(float(second), 0.0)
    for second in range(1060, 1066):
        window.record(float(second), 100.0)
    assert (window.stable_average(1065.0), window.panic_average(1065.0)) == (10.0, 100.0)


def test_max_window_holds_the_largest_value_for_its_duration():
    window = MaxWindow(10.0)
    for now, value in ((0.0, 5), (2.0, 3), (4.0, 4)):
        window.record(now, value)
    assert [window.current(now) for now in (4.0, 9.0, 10.0, 14.0)] == [5, 5, 4, None]


@pytest.mark.parametrize(
    ("events", "collected_at", "average", "requests"),
    [
        ([], 101.0, 0.0, 0),
        ([("start", 100.0), ("finish", 100.5)], 101.0, 0.5, 1),  # one request for half the second
        ([("start", 100.0), ("start", 100.0), ("finish", 100.25), ("finish", 101.0)], 101.0, 1.25, 2),
        ([("start", 100.0)], 102.0, 1.0, 1),  # still in flight: counts the whole period
    ],
)
def test_the_meter_gives_the_time_weighted_concurrency_and_the_requests_started(
    events, collected_at, average, requests
):
    meter = ConcurrencyMeter(100.0)
    for kind, now in events:
        (meter.request_started if kind == "start" else meter.request_finished)(now)
    assert meter.collect(collected_at) == (average, requests)


def test_each_collect_starts_a_new_period_and_in_flight_requests_carry_over():
    meter = ConcurrencyMeter(100.0)
    meter.request_started(100.0)
    meter.request_started(100.5)
    meter.collect(101.0)
    meter.request_finished(101.5)
    assert (meter.collect(102.0), meter.in_flight) == ((1.5, 0), 1)


def test_a_collect_at_the_same_instant_reads_the_in_flight_count():
    meter = ConcurrencyMeter(100.0)
    meter.request_started(100.0)
    assert meter.collect(100.0) == (1.0, 1)


def test_given_a_one_second_panic_window_then_the_average_is_the_current_second_alone():
    # a 6s stable window at 10% rounds to a 1s panic window
    window = fed(BucketWindow(1.0), {0.0: 5.0, 1.0: 3.0})
    assert window.average(1.0) == 3.0


def test_given_a_report_exactly_one_window_after_the_last_then_averaging_starts_afresh():
    window = fed(BucketWindow(10.0), {0.0: 8.0, 10.0: 4.0, 11.0: 4.0})
    assert window.average(11.0) == 4.0


def test_given_a_late_report_exactly_one_window_older_than_the_latest_then_it_is_ignored():
    window = fed(BucketWindow(10.0), {20.0: 5.0, 10.0: 100.0})
    assert window.average(20.0) == 5.0


@pytest.mark.parametrize(
    ("samples", "now", "average"),
    [
        ({0.0: 8.0, 10.0: 4.0}, 10.0, 4.0),  # 10s apart is a whole window of five 2s buckets
        ({2.0: 2.0, 5.0: 6.0}, 5.0, 4.0),  # buckets 1 and 2: two buckets, not one
    ],
)
def test_given_two_second_buckets_then_times_map_to_buckets_of_two_seconds(samples, now, average):
    assert fed(BucketWindow(10.0, bucket=2.0), samples).average(now) == average
