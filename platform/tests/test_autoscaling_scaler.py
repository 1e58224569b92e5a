"""One Revision's decision every tick: bounds, initial scale, scale to zero and back.

A fake clock drives each case; the runtime is played by the test: it reports traffic,
says how many instances are ready and whether a route sends traffic to the Revision.
"""

from datetime import UTC, datetime

import pytest

from knit.autoscaling.knobs import PREFIX, parse_annotations, parse_config
from knit.autoscaling.scaler import RevisionScaler

TICK = 2.0


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def scaler(clock, container_concurrency=0, config=None, **annotations):
    named = {PREFIX + name.replace("_", "-"): value for name, value in annotations.items()}
    spec = parse_annotations(named, container_concurrency, parse_config(config or {}))
    return RevisionScaler(spec, clock.now)


def run(revision, clock, until, ready=0, follow=True, routable=True, concurrency=0.0):
    """Tick until `until` feeding per-second traffic; `ready` instances at first, then as many
    as the last decision asked for (they start at once) unless `follow` is False."""
    decisions = {}
    while clock.now < until:
        for second in range(int(TICK)):
            revision.record_traffic(clock.now + second, concurrency, int(concurrency))
        now = clock.advance(TICK)
        decision = revision.decide(now, ready, routable)
        decisions[now] = decision
        if follow:
            ready = decision.desired
    return decisions


def idle_revision(clock, **knobs):
    """A Revision that started at t=0 asking for its initial instance; run it with ready=1 from t=2."""
    revision = scaler(clock, **knobs)
    assert revision.decide(clock.now, 0, True).desired == 1  # initial-scale 1
    return revision


def test_a_new_revision_starts_with_its_initial_instance_before_any_traffic():
    clock = Clock()
    decision = scaler(clock).decide(clock.now, 0, True)
    assert (decision.desired, decision.activity) == (1, "activating")
    assert "initial-scale" in decision.reason


@pytest.mark.parametrize(("ready", "desired"), [(0, 3), (2, 3)])
def test_initial_scale_holds_until_reached(ready, desired):
    clock = Clock()
    revision = scaler(clock, initial_scale="3")
    assert revision.decide(clock.advance(TICK), ready, True).desired == desired


def test_once_initial_scale_was_reached_traffic_decides():
    clock = Clock()
    revision = scaler(clock, initial_scale="3")
    revision.decide(clock.advance(TICK), 3, True)  # reached
    decision = revision.decide(clock.advance(TICK), 3, True)
    assert decision.desired == 1  # no traffic: 3 ready may at most halve, and stay at least 1 for now


def test_initial_scale_zero_starts_at_zero():
    clock = Clock()
    revision = scaler(clock, config={"allow-zero-initial-scale": "true"}, initial_scale="0")
    decision = revision.decide(clock.now, 0, True)
    assert (decision.desired, decision.activity) == (0, "inactive")


@pytest.mark.parametrize(("routable", "desired"), [(True, 2), (False, 0)])
def test_min_scale_holds_only_while_the_revision_is_routable(routable, desired):
    clock = Clock()
    revision = scaler(clock, min_scale="2", initial_scale="2")
    decisions = run(revision, clock, until=100.0, ready=2, follow=False, routable=routable)
    assert decisions[100.0].desired == desired  # unroutable: scaled to zero like any idle Revision


def test_max_scale_caps_the_desired_scale():
    clock = Clock()
    revision = scaler(clock, max_scale="3")
    decision = run(revision, clock, until=10.0, concurrency=1000.0)[10.0]
    assert (decision.desired, decision.reason) == (3, "max-scale 3")
    assert decision.recommended > 3


def test_max_scale_wins_over_initial_scale():
    clock = Clock()
    revision = scaler(clock, initial_scale="5", max_scale="2", config={"max-scale": "0"})
    assert revision.decide(clock.now, 0, True).desired == 2


def test_traffic_scales_the_revision_through_the_kpa():
    clock = Clock()
    revision = scaler(clock)
    decision = run(revision, clock, until=80.0, concurrency=350.0)[80.0]
    assert (decision.desired, decision.stable_value, decision.panic_value) == (5, 350.0, 350.0)


# --- Scale to zero ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "desired", "activity"),
    [
        (2.0, 1, "active"),  # the initial instance is ready at t=2
        (60.0, 1, "active"),  # active for less than a stable window (60s): keep it
        (62.0, 1, "inactive"),  # the decision to scale to zero
        (90.0, 1, "inactive"),  # scale-to-zero-grace-period (30s) keeps the last instance
        (92.0, 0, "inactive"),
        (200.0, 0, "inactive"),
    ],
)
def test_an_idle_revision_keeps_its_last_instance_for_the_grace_period_after_deciding_to_scale_to_zero(
    seconds, desired, activity
):
    clock = Clock()
    decisions = run(idle_revision(clock), clock, until=200.0, ready=1)
    assert (decisions[seconds].desired, decisions[seconds].activity) == (desired, activity)


@pytest.mark.parametrize(("seconds", "desired"), [(92.0, 1), (150.0, 1), (152.0, 0)])
def test_pod_retention_period_keeps_the_last_instance_longer_than_the_grace_period(seconds, desired):
    clock = Clock()
    decisions = run(idle_revision(clock, scale_to_zero_pod_retention_period="90s"), clock, until=160.0, ready=1)
    assert decisions[seconds].desired == desired


def test_grace_period_comes_from_the_config():
    clock = Clock()
    decisions = run(idle_revision(clock, config={"scale-to-zero-grace-period": "10s"}), clock, until=80.0, ready=1)
    assert (decisions[70.0].desired, decisions[72.0].desired) == (1, 0)


def test_the_reason_names_the_rule_that_keeps_the_last_instance():
    clock = Clock()
    decisions = run(idle_revision(clock), clock, until=80.0, ready=1)
    assert "scale-to-zero-grace-period (12s left)" in decisions[80.0].reason


def test_with_scale_to_zero_disabled_the_last_instance_stays():
    clock = Clock()
    decisions = run(idle_revision(clock, config={"enable-scale-to-zero": "false"}), clock, until=600.0, ready=1)
    assert {decision.desired for decision in decisions.values()} == {1}


def test_traffic_returning_during_the_grace_period_keeps_the_revision_active():
    clock = Clock()
    revision = idle_revision(clock)
    run(revision, clock, until=70.0, ready=1)  # decided to scale to zero at t=62
    decision = run(revision, clock, until=72.0, ready=1, concurrency=3.0)[72.0]
    assert (decision.desired, decision.activity) == (1, "active")


def test_a_revision_with_no_route_scales_to_zero_too():
    clock = Clock()
    revision = scaler(clock, initial_scale="4")
    decisions = run(revision, clock, until=200.0, routable=False)  # its 4 instances are ready at t=4
    # down to one at once (nothing holds back an unroutable scale down), then the usual way to zero
    assert [decisions[t].desired for t in (4.0, 6.0, 64.0, 92.0, 94.0)] == [4, 1, 1, 1, 0]


# --- Back from zero --------------------------------------------------------------------------


def at_zero(clock, **knobs):
    revision = idle_revision(clock, **knobs)
    assert run(revision, clock, until=100.0, ready=1)[100.0].desired == 0
    return revision


@pytest.mark.parametrize(("activation_scale", "desired"), [("1", 1), ("3", 3)])
def test_a_poke_at_zero_asks_for_instances_at_once(activation_scale, desired):
    clock = Clock()
    revision = at_zero(clock, activation_scale=activation_scale)
    revision.poke(clock.advance(0.3))  # between two ticks
    decision = revision.decide(clock.now, 0, True)
    assert (decision.desired, decision.activity) == (desired, "activating")


def test_a_poke_keeps_asking_until_an_instance_is_ready():
    clock = Clock()
    revision = at_zero(clock)
    revision.poke(clock.now)
    decisions = run(revision, clock, until=clock.now + 120.0, ready=0, follow=False)  # the instance never gets ready
    assert {decision.desired for decision in decisions.values()} == {1}


def test_traffic_reported_at_zero_asks_for_activation_scale():
    clock = Clock()
    revision = at_zero(clock, activation_scale="2")
    revision.record_traffic(clock.now, 1.0, 1)
    assert revision.decide(clock.now, 0, True).desired == 2


def test_an_instance_started_from_zero_serves_a_stable_window_before_the_next_decision_to_scale_to_zero():
    clock = Clock()
    revision = at_zero(clock)
    revision.poke(clock.now)  # t=100
    assert revision.decide(clock.now, 0, True).desired == 1
    decisions = run(revision, clock, until=200.0, ready=1)  # ready from t=102
    # the poke's request leaves the stable window at t=160, but the instance is active only since t=102
    assert [decisions[t].activity for t in (102.0, 160.0, 162.0)] == ["active", "active", "inactive"]
    assert [decisions[t].desired for t in (160.0, 162.0, 190.0, 192.0)] == [1, 1, 1, 0]


# --- Schedule and hpa -----------------------------------------------------------------------

MONDAY_0930_UTC = datetime(2026, 3, 2, 9, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("hours_later", "desired"), [(0, 4), (2, 1)])
def test_the_schedule_raises_min_scale_inside_its_window(hours_later, desired):
    clock = Clock(MONDAY_0930_UTC + hours_later * 3600)
    revision = scaler(clock, schedule="CRON_TZ=UTC 0 9 * * 1-5 for 1h: 4", initial_scale="1")
    decision = revision.decide(clock.now, 1, True)
    assert decision.desired == desired


def test_the_scheduled_min_scale_applies_only_while_routable():
    clock = Clock(MONDAY_0930_UTC)
    revision = scaler(clock, schedule="CRON_TZ=UTC 0 9 * * 1-5 for 1h: 4")
    assert revision.decide(clock.now, 1, False).desired == 1


def test_the_larger_of_min_scale_and_the_schedule_wins():
    clock = Clock(MONDAY_0930_UTC)
    revision = scaler(clock, schedule="CRON_TZ=UTC 0 9 * * * for 1h: 4", min_scale="6")
    assert revision.decide(clock.now, 6, True).desired == 6


@pytest.mark.parametrize(("cpu", "desired"), [(160.0, 8), (40.0, 2)])
def test_hpa_class_scales_on_cpu_per_instance(cpu, desired):
    clock = Clock()
    revision = scaler(clock, **{"class": "hpa"})
    revision.record_usage(clock.now, cpu_percent=cpu, memory_mib=100.0)
    decision = revision.decide(clock.now, 4, True)  # 4 ready, target 80% of the CPU request
    assert (decision.desired, decision.stable_value) == (desired, cpu)


def test_hpa_class_scales_on_memory_when_asked():
    clock = Clock()
    revision = scaler(clock, **{"class": "hpa", "metric": "memory", "target": "200"})
    revision.record_usage(clock.now, cpu_percent=10.0, memory_mib=500.0)
    assert revision.decide(clock.now, 2, True).desired == 5


def test_hpa_class_never_scales_to_zero():
    clock = Clock()
    revision = scaler(clock, **{"class": "hpa"})
    revision.decide(clock.now, 0, True)
    decisions = run(revision, clock, until=600.0)
    assert {decision.desired for decision in decisions.values()} == {1}


# --- State across episodes, bounds at their exact values, reasons ----------------------------


def test_given_zero_then_n_then_zero_then_n_the_second_episode_goes_exactly_like_the_first():
    clock = Clock()
    revision = at_zero(clock)  # t=100

    def episode():
        revision.poke(clock.now)
        woken = revision.decide(clock.now, 0, True)
        busy = run(revision, clock, until=clock.now + 80.0, ready=woken.desired, concurrency=350.0)
        idle = run(revision, clock, until=clock.now + 200.0, ready=5)
        return woken.desired, busy[clock.now - 200.0].desired, [d.desired for d in idle.values()][-1]

    assert episode() == (1, 5, 0)
    assert episode() == (1, 5, 0)


def test_given_a_restart_with_five_instances_up_then_they_are_held_until_the_windows_fill():
    clock = Clock(1000.0)
    spec = parse_annotations({}, 0, parse_config({}))
    revision = RevisionScaler(spec, clock.now, ready=5)
    assert revision.decide(clock.advance(TICK), 5, True).desired == 5


@pytest.mark.parametrize(("initial_scale", "activity"), [("1", "activating"), ("0", "inactive")])
def test_given_a_new_revision_then_it_starts_activating_unless_its_initial_scale_is_zero(initial_scale, activity):
    clock = Clock()
    revision = scaler(clock, initial_scale=initial_scale, config={"allow-zero-initial-scale": "true"})
    assert revision.activity == activity


def test_given_initial_scale_zero_and_an_instance_found_ready_then_it_is_kept_for_the_grace_period():
    clock = Clock()
    revision = scaler(clock, initial_scale="0", config={"allow-zero-initial-scale": "true"})
    assert [revision.decide(now, 1, True).desired for now in (10.0, 29.0, 30.0)] == [1, 1, 0]


def test_given_initial_scale_zero_then_a_poke_makes_the_revision_activating_until_an_instance_is_ready():
    clock = Clock()
    revision = scaler(clock, initial_scale="0", config={"allow-zero-initial-scale": "true"})
    revision.poke(1.0)
    assert revision.decide(1.0, 0, True).activity == "activating"
    assert revision.decide(2.0, 1, True).activity == "active"


def test_given_a_revision_waiting_for_its_first_instance_when_its_route_goes_away_then_it_keeps_asking_for_one():
    clock = Clock()
    revision = scaler(clock, min_scale="3", initial_scale="0", config={"allow-zero-initial-scale": "true"})
    assert revision.decide(0.0, 0, True).activity == "activating"
    decision = revision.decide(2.0, 0, False)
    assert (decision.desired, decision.reason) == (1, "waiting for the first instance before scaling to zero")


@pytest.mark.parametrize(("ready", "activity"), [(1, "activating"), (2, "activating"), (3, "active")])
def test_given_min_scale_3_then_the_revision_is_active_only_with_3_ready(ready, activity):
    clock = Clock()
    revision = scaler(clock, min_scale="3")
    revision.decide(0.0, 3, True)  # initial scale reached once
    assert revision.decide(2.0, ready, True).activity == activity


def test_given_activation_scale_3_and_a_waiting_request_then_it_asks_for_3_until_an_instance_is_ready():
    clock = Clock()
    revision = at_zero(clock, activation_scale="3")
    revision.poke(clock.now)
    decisions = run(revision, clock, until=clock.now + 90.0, ready=0, follow=False)  # past the stable window
    assert {decision.desired for decision in decisions.values()} == {3}
    assert {decision.reason for decision in decisions.values()} == {
        "a request waits for an instance (activating from zero)"
    }


def test_given_a_burst_reported_at_zero_with_a_waiting_request_then_it_asks_for_the_burst_at_once():
    clock = Clock()
    revision = scaler(clock, initial_scale="0", config={"allow-zero-initial-scale": "true"})
    revision.record_traffic(0.0, 349.0, 349)
    revision.poke(0.0)  # the 350th request
    assert revision.decide(0.0, 0, True).desired == 5


def test_given_a_waiting_request_then_it_counts_as_one_request_in_flight():
    clock = Clock()
    revision = scaler(clock, initial_scale="0", config={"allow-zero-initial-scale": "true"})
    revision.poke(0.0)
    assert revision.decide(0.0, 0, True).stable_value == 1.0


@pytest.mark.parametrize(("metric", "observed"), [("rps", 40.0), ("concurrency", 5.0)])
def test_given_a_metric_then_the_scaler_records_requests_for_rps_and_concurrency_otherwise(metric, observed):
    clock = Clock()
    revision = scaler(clock, metric=metric)
    revision.record_traffic(0.0, 5.0, 40)
    assert revision.decide(0.0, 1, True).stable_value == observed


def test_given_an_idle_active_revision_then_the_reason_counts_down_the_stable_window():
    clock = Clock()
    decisions = run(idle_revision(clock), clock, until=62.0, ready=1)
    assert decisions[40.0].reason == "no traffic, but active for less than the stable window (22s left)"
    assert decisions[62.0].reason == "no traffic: decided to scale to zero; keeping the last instance for now"


def test_given_an_idle_revision_at_zero_then_the_reason_says_so():
    clock = Clock()
    decisions = run(idle_revision(clock), clock, until=100.0, ready=1)
    assert [(decisions[t].desired, decisions[t].reason) for t in (92.0, 100.0)] == [
        (0, "no traffic: scaled to zero"),  # the last instance was still up: the grace period is over
        (0, "no traffic: scaled to zero"),  # none is up
    ]


@pytest.mark.parametrize(
    ("retention", "rule"),
    [("30s", "scale-to-zero-grace-period"), ("40s", "scale-to-zero-pod-retention-period")],
    ids=["equal to the grace period", "longer"],
)
def test_given_a_retention_period_then_the_reason_names_whichever_keeps_the_instance_longer(retention, rule):
    clock = Clock()
    decisions = run(idle_revision(clock, scale_to_zero_pod_retention_period=retention), clock, until=70.0, ready=1)
    assert decisions[70.0].reason.startswith(f"no traffic: keeping the last instance for {rule} (")


def test_given_scale_to_zero_disabled_then_the_reason_names_the_setting():
    clock = Clock()
    decisions = run(idle_revision(clock, config={"enable-scale-to-zero": "false"}), clock, until=100.0, ready=1)
    assert decisions[100.0].reason == "scale to zero is disabled (enable-scale-to-zero)"


def test_given_a_stable_load_then_the_reason_gives_the_kpa_mode_and_values():
    clock = Clock()
    decision = run(scaler(clock), clock, until=80.0, concurrency=350.0)[80.0]
    assert decision.reason == "kpa (stable): concurrency 350 stable, 350 panic, target 70 per instance"
    assert decision.excess_burst_capacity == 5 * 100 - 211 - 350


def test_given_a_surge_then_the_reason_says_panic():
    clock = Clock()
    revision = scaler(clock)
    revision.record_traffic(0.0, 700.0, 700)
    decision = revision.decide(0.0, 2, True)
    assert decision.reason == "kpa (panic): concurrency 700 stable, 700 panic, target 70 per instance"


def test_given_a_routable_revision_then_one_decision_scales_down_by_at_most_half():
    clock = Clock()
    revision = scaler(clock)
    revision.decide(0.0, 10, True)
    revision.record_traffic(70.0, 10.0, 10)
    assert revision.decide(70.0, 10, True).desired == 5  # max-scale-down-rate 2


@pytest.mark.parametrize(
    ("knobs", "ready", "concurrency", "desired", "reason"),
    [
        ({"min_scale": "2"}, 2, 140.0, 2, "kpa (stable): concurrency 140 stable, 140 panic, target 70 per instance"),
        ({"max_scale": "3"}, 3, 210.0, 3, "kpa (stable): concurrency 210 stable, 210 panic, target 70 per instance"),
        ({"max_scale": "1"}, 1, 210.0, 1, "max-scale 1"),
        ({"min_scale": "3", "initial_scale": "3"}, 0, 0.0, 3, "min-scale 3"),
        ({"min_scale": "4", "schedule": "CRON_TZ=UTC 0 9 * * * for 1h: 4"}, 4, 0.0, 4, "min-scale 4"),
    ],
    ids=["traffic asks exactly min-scale", "exactly max-scale", "max-scale 1", "initial equal to min",
         "schedule equal to min"],
)  # fmt: skip
def test_given_a_bound_equal_to_what_is_asked_then_the_reason_names_the_rule_that_decided(
    knobs, ready, concurrency, desired, reason
):
    clock = Clock(MONDAY_0930_UTC)
    revision = scaler(clock, **knobs)
    revision.record_traffic(clock.now, concurrency, int(concurrency))
    decision = revision.decide(clock.now, ready, True)
    assert (decision.desired, decision.reason) == (desired, reason)


@pytest.mark.parametrize(
    ("knobs", "desired", "reason"),
    [({}, 1, "class hpa never scales to zero"), ({"min_scale": "1"}, 1, "min-scale 1")],
)
def test_given_class_hpa_at_zero_then_the_reason_names_the_rule_that_keeps_one(knobs, desired, reason):
    clock = Clock()
    revision = scaler(clock, **{"class": "hpa"}, **knobs)
    revision.decide(0.0, 1, True)  # initial-scale reached
    decision = revision.decide(2.0, 0, True)
    assert (decision.desired, decision.reason) == (desired, reason)


@pytest.mark.parametrize(
    ("cpu", "reason", "value"),
    [(160.0, "hpa: cpu 160.0 per instance, target 80", 160.0), (None, "hpa: cpu unknown per instance, target 80", 0.0)],
    ids=["measured", "not yet measured"],
)
def test_given_class_hpa_then_the_decision_reports_usage_no_panic_and_no_burst_capacity(cpu, reason, value):
    clock = Clock()
    revision = scaler(clock, **{"class": "hpa"})
    if cpu is not None:
        revision.record_usage(0.0, cpu_percent=cpu, memory_mib=100.0)
    decision = revision.decide(0.0, 4, True)
    assert (decision.reason, decision.panic, decision.stable_value, decision.panic_value) == (
        reason,
        False,
        value,
        value,
    )
    assert decision.excess_burst_capacity == 0


def test_given_a_request_served_from_zero_then_back_at_zero_nothing_is_asked_for_until_the_next_request():
    clock = Clock()
    revision = at_zero(clock)
    revision.poke(clock.now)  # t=100
    revision.decide(clock.now, 0, True)
    decisions = run(revision, clock, until=220.0, ready=1)  # one instance up from t=102, back to zero at t=192
    assert [decisions[t].desired for t in (190.0, 192.0, 194.0, 220.0)] == [1, 0, 0, 0]
