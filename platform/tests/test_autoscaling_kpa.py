"""The KPA decision, rule by rule, as Knative's autoscaler.go makes it.

Defaults unless a case says otherwise: target 100 concurrent requests per instance at 70%
utilization (so 70 per instance), panic at 200% over a 6s panic window, stable window 60s,
max-scale-up-rate 1000, max-scale-down-rate 2.
"""

import pytest

from knit.autoscaling.knobs import PREFIX, parse_annotations, parse_config
from knit.autoscaling.kpa import KpaAutoscaler


def spec(container_concurrency=0, config=None, **annotations):
    named = {PREFIX + name.replace("_", "-"): value for name, value in annotations.items()}
    return parse_annotations(named, container_concurrency, parse_config(config or {}))


@pytest.mark.parametrize(
    ("observed", "ready", "desired"),
    [
        (0.0, 1, 0),  # no traffic: no instance wanted
        (0.4, 1, 1),  # any traffic wants an instance
        (70.0, 1, 1),  # exactly on target
        (140.0, 2, 2),
        (150.0, 2, 3),  # one request over two instances' target asks for a third
        (350.0, 4, 5),
    ],
)
def test_stable_mode_asks_for_the_observed_concurrency_over_the_per_instance_target(observed, ready, desired):
    result = KpaAutoscaler().scale(0.0, observed, observed, ready, spec())
    assert (result.desired, result.panic) == (desired, False)


@pytest.mark.parametrize(("utilization", "desired"), [("50", 4), ("70", 3), ("100", 2)])
def test_target_utilization_sets_the_share_of_the_target_aimed_for(utilization, desired):
    # given 200 concurrent requests on 3 instances with a target of 100 each
    result = KpaAutoscaler().scale(0.0, 200.0, 200.0, 3, spec(target_utilization_percentage=utilization))
    assert result.desired == desired


def test_container_concurrency_is_the_target_when_none_is_given():
    # containerConcurrency 10 at 70% utilization: 7 per instance
    result = KpaAutoscaler().scale(0.0, 70.0, 70.0, 10, spec(container_concurrency=10))
    assert result.desired == 10


def test_rps_metric_scales_on_requests_per_second_over_its_target():
    # rps target 200 at 70%: 140 requests per second per instance
    result = KpaAutoscaler().scale(0.0, 420.0, 420.0, 3, spec(metric="rps"))
    assert result.desired == 3


@pytest.mark.parametrize(
    ("observed_panic", "threshold", "panic", "desired"),
    [
        (210.0, None, False, 2),  # asks 3 of 2 ready: 150% < 200%, the stable value decides
        (280.0, None, True, 4),  # asks 4 of 2 ready: 200% reaches the threshold
        (300.0, None, True, 5),
        (300.0, "300", False, 2),  # 250% < 300%
    ],
)
def test_panic_starts_when_the_panic_window_asks_for_the_threshold_share_of_ready_instances(
    observed_panic, threshold, panic, desired
):
    knobs = {"panic_threshold_percentage": threshold} if threshold else {}
    result = KpaAutoscaler().scale(0.0, 100.0, observed_panic, 2, spec(**knobs))
    assert (result.panic, result.desired) == (panic, desired)


def test_panic_holds_for_a_stable_window_after_the_last_time_over_the_threshold():
    autoscaler, revision = KpaAutoscaler(), spec()
    assert autoscaler.scale(0.0, 100.0, 300.0, 2, revision).panic  # entered at t=0
    # then the burst is served: the panic window asks for no more than the 5 ready
    held = [autoscaler.scale(now, 100.0, 100.0, 5, revision).panic for now in (2.0, 30.0, 60.0)]
    assert held == [True, True, True]
    assert not autoscaler.scale(62.0, 100.0, 100.0, 5, revision).panic  # more than 60s after t=0


def test_each_tick_over_the_threshold_extends_panic():
    autoscaler, revision = KpaAutoscaler(), spec()
    autoscaler.scale(0.0, 100.0, 300.0, 2, revision)
    autoscaler.scale(40.0, 100.0, 300.0, 2, revision)  # over again at t=40
    assert autoscaler.scale(90.0, 100.0, 100.0, 5, revision).panic
    assert not autoscaler.scale(102.0, 100.0, 100.0, 5, revision).panic


def test_in_panic_the_desired_scale_never_decreases():
    autoscaler, revision = KpaAutoscaler(), spec()
    assert autoscaler.scale(0.0, 100.0, 600.0, 4, revision).desired == 9
    # the burst halves: panic asks for 5, stable for 2, but panic keeps the 9
    result = autoscaler.scale(2.0, 100.0, 300.0, 9, revision)
    assert (result.panic, result.desired) == (True, 9)


def test_after_panic_the_stable_value_decides_again():
    autoscaler, revision = KpaAutoscaler(), spec()
    autoscaler.scale(0.0, 100.0, 600.0, 4, revision)
    assert autoscaler.scale(62.0, 140.0, 140.0, 9, revision).desired == 4  # 9 ready may halve: floor(9/2)
    assert autoscaler.scale(64.0, 140.0, 140.0, 4, revision).desired == 2


def test_in_panic_the_stable_value_counts_when_it_asks_for_more():
    autoscaler, revision = KpaAutoscaler(), spec()
    autoscaler.scale(0.0, 100.0, 300.0, 2, revision)
    assert autoscaler.scale(2.0, 700.0, 350.0, 5, revision).desired == 10


@pytest.mark.parametrize(
    ("rate", "ready", "desired"),
    [
        ("1000", 2, 143),  # the default never binds in practice
        ("2", 2, 4),
        ("1.1", 2, 3),  # ceil(2.2): growth by at least one instance is always allowed
        ("2", 0, 2),  # zero ready counts as one
    ],
)
def test_max_scale_up_rate_bounds_growth_per_decision(rate, ready, desired):
    revision = spec(config={"max-scale-up-rate": rate})
    assert KpaAutoscaler().scale(0.0, 10_000.0, 10_000.0, ready, revision).desired == desired


@pytest.mark.parametrize(
    ("rate", "reachable", "desired"),
    [
        ("2", True, 5),  # floor(10 / 2)
        ("4", True, 2),  # floor(10 / 4)
        ("2", False, 0),  # no route to it: nothing holds the scale down back
    ],
)
def test_max_scale_down_rate_bounds_shrinking_per_decision_while_reachable(rate, reachable, desired):
    revision = spec(config={"max-scale-down-rate": rate})
    assert KpaAutoscaler().scale(0.0, 0.0, 0.0, 10, revision, reachable=reachable).desired == desired


@pytest.mark.parametrize(("observed", "desired"), [(0.0, 0), (10.0, 3), (700.0, 10)])
def test_activation_scale_is_the_least_scale_whenever_there_is_traffic(observed, desired):
    revision = spec(activation_scale="3")
    assert KpaAutoscaler().scale(0.0, observed, observed, 10, revision, reachable=False).desired == desired


def test_scale_down_delay_keeps_the_largest_decision_of_the_delay_window():
    autoscaler, revision = KpaAutoscaler(), spec(scale_down_delay="10s")
    assert autoscaler.scale(0.0, 350.0, 350.0, 5, revision).desired == 5
    # then the load drops to what 3 instances carry
    held = [autoscaler.scale(now, 210.0, 210.0, 5, revision).desired for now in (2.0, 4.0, 6.0, 8.0)]
    assert held == [5, 5, 5, 5]
    assert autoscaler.scale(10.0, 210.0, 210.0, 5, revision).desired == 3


def test_without_scale_down_delay_a_lower_load_scales_down_at_once():
    autoscaler, revision = KpaAutoscaler(), spec()
    autoscaler.scale(0.0, 350.0, 350.0, 5, revision)
    assert autoscaler.scale(2.0, 210.0, 210.0, 5, revision).desired == 3


def test_scale_down_delay_does_not_delay_scaling_up():
    autoscaler, revision = KpaAutoscaler(), spec(scale_down_delay="60s")
    autoscaler.scale(0.0, 70.0, 70.0, 1, revision)
    assert autoscaler.scale(2.0, 210.0, 130.0, 1, revision).desired == 3


@pytest.mark.parametrize(
    ("burst_capacity", "ready", "observed_panic", "excess"),
    [
        ("211", 3, 50.0, 39),  # 3 × 100 − 211 − 50
        ("211", 1, 10.0, -121),  # one instance cannot take the burst: keep the activator in the path
        ("0", 3, 50.0, 0),
        ("-1", 3, 50.0, -1),  # unlimited: the activator always stays in the path
    ],
)
def test_excess_burst_capacity_is_total_capacity_less_target_burst_capacity_less_the_panic_value(
    burst_capacity, ready, observed_panic, excess
):
    result = KpaAutoscaler().scale(
        0.0, observed_panic, observed_panic, ready, spec(target_burst_capacity=burst_capacity)
    )
    assert result.excess_burst_capacity == excess


def test_result_carries_the_observed_values():
    result = KpaAutoscaler().scale(0.0, 42.5, 63.0, 1, spec())
    assert (result.stable_value, result.panic_value) == (42.5, 63.0)


def test_an_autoscaler_restarted_with_instances_up_holds_them_until_its_windows_fill():
    # given a fresh autoscaler for a Revision that already runs 5 instances and no data yet
    autoscaler = KpaAutoscaler(now=0.0, ready=5)
    result = autoscaler.scale(2.0, 0.0, 0.0, 5, spec())
    assert (result.panic, result.desired) == (True, 5)
    assert autoscaler.scale(62.0, 0.0, 0.0, 5, spec()).desired == 2  # a stable window later it scales down


# --- Boundaries and repeated episodes -------------------------------------------------------------


def test_given_a_second_surge_after_panic_ended_then_it_is_sized_on_its_own_not_on_the_first():
    # given a first surge on 2 instances that panics up to 10 (700 concurrent at 70 per instance)
    autoscaler, revision = KpaAutoscaler(), spec()
    assert autoscaler.scale(0.0, 100.0, 700.0, 2, revision).desired == 10
    # when it is served and a stable window passes, the stable value decides again
    calm = autoscaler.scale(61.0, 100.0, 100.0, 10, revision)
    assert (calm.panic, calm.desired) == (False, 5)  # floor(10 / max-scale-down-rate 2)
    # then a smaller surge on 3 instances panics again, and asks for what it needs: 6, not 10
    second = autoscaler.scale(70.0, 100.0, 420.0, 3, revision)
    assert (second.panic, second.desired) == (True, 6)


def test_given_panic_stable_panic_stable_then_each_episode_ends_a_stable_window_after_its_last_surge():
    autoscaler, revision = KpaAutoscaler(), spec()
    panics = [
        autoscaler.scale(now, 100.0, panic_value, ready, revision).panic
        for now, panic_value, ready in [(0.0, 300.0, 2), (60.0, 100.0, 5), (61.0, 100.0, 5), (100.0, 300.0, 2),
                                        (160.0, 100.0, 5), (161.0, 100.0, 5)]
    ]  # fmt: skip
    assert panics == [True, True, False, True, True, False]


@pytest.mark.parametrize(("ready", "panic", "desired"), [(1, False, 0), (2, True, 2)])
def test_given_a_restart_then_only_more_than_one_ready_instance_starts_in_panic(ready, panic, desired):
    result = KpaAutoscaler(now=100.0, ready=ready).scale(100.0, 0.0, 0.0, ready, spec())
    assert (result.panic, result.desired) == (panic, desired)


@pytest.mark.parametrize(("observed", "desired"), [(0.0, 2), (10.0, 3)], ids=["no traffic", "a trickle"])
def test_given_a_restart_in_panic_with_activation_scale_3_then_only_traffic_asks_for_activation_scale(
    observed, desired
):
    autoscaler = KpaAutoscaler(now=0.0, ready=2)
    assert autoscaler.scale(2.0, 0.0, observed, 2, spec(activation_scale="3")).desired == desired


def test_given_scale_down_delay_and_no_traffic_ever_then_the_desired_scale_is_zero():
    result = KpaAutoscaler().scale(0.0, 0.0, 0.0, 0, spec(scale_down_delay="60s"))
    assert result.desired == 0


def test_given_the_shortest_scale_down_delay_of_1s_then_a_decision_half_a_second_later_keeps_the_higher_one():
    autoscaler, revision = KpaAutoscaler(), spec(scale_down_delay="1s")
    assert autoscaler.scale(10.0, 280.0, 280.0, 4, revision).desired == 4
    assert autoscaler.scale(10.5, 70.0, 70.0, 4, revision).desired == 4  # within the 1s delay
    assert autoscaler.scale(11.0, 70.0, 70.0, 4, revision).desired == 2  # the 4 of t=10 left it


@pytest.mark.parametrize(("burst", "capacity"), [("0", 0), ("-1", -1), ("0.5", 149), ("1", 149)])
def test_given_a_fractional_or_unit_target_burst_capacity_then_it_is_subtracted_like_any_other(burst, capacity):
    # 2 instances with a target of 100 each, 50 in flight: 200 - burst - 50, floored
    assert KpaAutoscaler().scale(0.0, 50.0, 50.0, 2, spec(target_burst_capacity=burst)).excess_burst_capacity == (
        capacity
    )
