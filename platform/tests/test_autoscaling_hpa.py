"""Kubernetes' HPA rules for cpu and memory: ratio to target, 10% tolerance, stabilization."""

import pytest

from knit.autoscaling.hpa import HpaAutoscaler, recommend
from knit.autoscaling.knobs import PREFIX, parse_annotations


def hpa_spec(**annotations):
    named = {PREFIX + name.replace("_", "-"): value for name, value in {"class": "hpa", **annotations}.items()}
    return parse_annotations(named, 0)


@pytest.mark.parametrize(
    ("usage", "target", "ready", "desired"),
    [
        (80.0, 80.0, 4, 4),  # on target
        (87.0, 80.0, 4, 4),  # 8.75% over: within the 10% tolerance, no change
        (73.0, 80.0, 4, 4),  # 8.75% under: within tolerance
        (120.0, 80.0, 4, 6),  # ceil(4 × 1.5)
        (70.0, 80.0, 4, 4),  # 12.5% under: ceil(3.5) = 4
        (40.0, 80.0, 4, 2),
        (20.0, 80.0, 10, 3),  # ceil(2.5)
        (512.0, 256.0, 2, 4),  # memory in MiB works the same way
    ],
)
def test_desired_is_ready_times_usage_over_target_outside_the_tolerance(usage, target, ready, desired):
    assert recommend(usage, target, ready) == desired


def test_scale_down_goes_only_to_the_highest_recommendation_of_the_last_300_seconds():
    hpa, spec = HpaAutoscaler(), hpa_spec()
    assert hpa.scale(0.0, 160.0, 2, spec) == 4
    # then the load falls to a quarter of the target on 4 instances: the recommendation is 1
    held = [hpa.scale(now, 20.0, 4, spec) for now in (15.0, 150.0, 299.0)]
    assert held == [4, 4, 4]
    assert hpa.scale(300.0, 20.0, 4, spec) == 1  # the 4 of t=0 left the window


def test_scale_up_is_not_stabilized():
    hpa, spec = HpaAutoscaler(), hpa_spec()
    assert hpa.scale(0.0, 80.0, 1, spec) == 1
    assert hpa.scale(15.0, 400.0, 1, spec) == 5


def test_a_window_annotation_stabilizes_both_directions():
    # as Knative's hpa class: `window` sets both stabilization windows
    hpa, spec = HpaAutoscaler(), hpa_spec(window="60s")
    assert (spec.scale_up_stabilization, spec.scale_down_stabilization) == (60.0, 60.0)
    hpa.scale(0.0, 80.0, 1, spec)
    assert hpa.scale(15.0, 400.0, 1, spec) == 1  # the 1 of t=0 is still in the scale-up window
    assert hpa.scale(60.0, 400.0, 1, spec) == 5


def test_without_usage_or_instances_the_scale_stays():
    hpa, spec = HpaAutoscaler(), hpa_spec()
    assert (hpa.scale(0.0, None, 3, spec), hpa.scale(1.0, 500.0, 0, spec)) == (3, 0)


@pytest.mark.parametrize(("usage", "desired"), [(60.0, 4), (59.0, 3)], ids=["exactly 25% under", "past it"])
def test_given_a_tolerance_of_25_percent_then_a_usage_exactly_at_it_keeps_the_ready_count(usage, desired):
    assert recommend(usage, 80.0, 4, tolerance=0.25) == desired


def test_given_hours_of_running_then_scale_down_still_waits_for_the_300_second_window():
    # realistic clock values: the window's arithmetic compares times, never recommendations
    hpa, spec = HpaAutoscaler(), hpa_spec()
    assert hpa.scale(7200.0, 160.0, 2, spec) == 4
    assert hpa.scale(7350.0, 20.0, 4, spec) == 4
    assert hpa.scale(7500.0, 20.0, 4, spec) == 1
