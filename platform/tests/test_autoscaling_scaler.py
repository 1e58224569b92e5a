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
