"""Every knob: its default, its aliases, and the message each kind of bad input gets."""

import dataclasses

import pytest

from knit.autoscaling.knobs import (
    ANNOTATION_KNOBS,
    CONFIG_KNOBS,
    DEFAULT_CONFIG,
    InvalidKnob,
    knobs_markdown,
    parse_annotations,
    parse_config,
)
from knit.durations import format_duration, parse_duration

K = "autoscaling.knit.dev/"
KN = "autoscaling.knative.dev/"
LIKE = 'like "60s", "1m30s", "500ms", "1h"'


def test_config_defaults_are_knatives():
    assert dataclasses.asdict(parse_config({})) == {
        "pod_autoscaler_class": "kpa",
        "enable_scale_to_zero": True,
        "max_scale_up_rate": 1000.0,
        "max_scale_down_rate": 2.0,
        "scale_to_zero_grace_period": 30.0,
        "scale_to_zero_pod_retention_period": 0.0,
        "tick_interval": 2.0,
        "stable_window": 60.0,
        "panic_window_percentage": 10.0,
        "panic_threshold_percentage": 200.0,
        "container_concurrency_target_default": 100.0,
        "container_concurrency_target_percentage": 70.0,
        "requests_per_second_target_default": 200.0,
        "target_burst_capacity": 211.0,
        "activation_scale": 1,
        "initial_scale": 1,
        "allow_zero_initial_scale": False,
        "min_scale": 0,
        "max_scale": 0,
        "scale_down_delay": 0.0,
        "max_scale_limit": 0,
    }


def test_a_revision_without_annotations_gets_the_kpa_defaults():
    spec = parse_annotations({}, 0, DEFAULT_CONFIG)
    assert dataclasses.asdict(spec) == {
        "autoscaler_class": "kpa",
        "metric": "concurrency",
        "target": 100.0,
        "target_utilization": 0.7,
        "target_value": 70.0,
        "container_concurrency": 0,
        "stable_window": 60.0,
        "panic_window": 6.0,
        "panic_threshold": 2.0,
        "min_scale": 0,
        "max_scale": 0,
        "initial_scale": 1,
        "activation_scale": 1,
        "scale_down_delay": 0.0,
        "scale_to_zero_pod_retention_period": 0.0,
        "target_burst_capacity": 211.0,
        "schedule": {"entries": ()},
        "max_scale_up_rate": 1000.0,
        "max_scale_down_rate": 2.0,
        "enable_scale_to_zero": True,
        "scale_to_zero_grace_period": 30.0,
        "tick_interval": 2.0,
        "scale_up_stabilization": 0.0,
        "scale_down_stabilization": 300.0,
    }


def test_config_values_are_parsed_into_seconds_and_numbers():
    config = parse_config({"stable-window": "1m30s", "scale-to-zero-grace-period": "500ms",
                           "enable-scale-to-zero": "False", "max-scale-up-rate": "10",
                           "container-concurrency-target-percentage": "0.8"})  # fmt: skip
    assert (config.stable_window, config.scale_to_zero_grace_period, config.enable_scale_to_zero) == (90.0, 0.5, False)
    assert (config.max_scale_up_rate, config.container_concurrency_target_percentage) == (10.0, 80.0)


def test_annotations_override_the_config():
    config = parse_config({"min-scale": "1", "stable-window": "30s", "target-burst-capacity": "0"})
    assert (parse_annotations({}, 0, config).min_scale, parse_annotations({}, 0, config).stable_window) == (1, 30.0)
    spec = parse_annotations({K + "min-scale": "0", K + "window": "2m", K + "target-burst-capacity": "-1"}, 0, config)
    assert (spec.min_scale, spec.stable_window, spec.target_burst_capacity) == (0, 120.0, -1.0)


@pytest.mark.parametrize(
    ("annotations", "min_scale"),
    [
        ({KN + "min-scale": "2"}, 2),
        ({KN + "minScale": "3"}, 3),  # Knative's older camelCase name
        ({K + "min-scale": "4", KN + "min-scale": "5", KN + "minScale": "6"}, 4),  # knit's wins
        ({KN + "min-scale": "5", KN + "minScale": "6"}, 5),
    ],
)
def test_knative_annotations_are_aliases_and_knits_win(annotations, min_scale):
    assert parse_annotations(annotations, 0).min_scale == min_scale


@pytest.mark.parametrize(
    ("value", "autoscaler_class"),
    [("kpa", "kpa"), ("hpa", "hpa"), ("kpa.autoscaling.knative.dev", "kpa"), ("hpa.autoscaling.knative.dev", "hpa")],
)
def test_class_accepts_knatives_spellings(value, autoscaler_class):
    assert parse_annotations({KN + "class": value}, 0).autoscaler_class == autoscaler_class


def test_other_annotations_are_ignored():
    spec = parse_annotations({"example.com/owner": "team-a", "autoscaling.example.com/x": "1"}, 0)
    assert spec == parse_annotations({}, 0)


@pytest.mark.parametrize(
    ("annotations", "container_concurrency", "target", "target_value"),
    [
        ({}, 10, 10.0, 7.0),  # containerConcurrency is the target when none is given
        ({K + "target": "50"}, 10, 10.0, 7.0),  # and caps a larger one
        ({K + "target": "5"}, 10, 5.0, 3.5),
        ({K + "target": "50"}, 0, 50.0, 35.0),
        ({K + "metric": "rps"}, 0, 200.0, 140.0),
        ({K + "metric": "rps", K + "target": "1000"}, 10, 1000.0, 700.0),  # containerConcurrency caps concurrency only
        ({K + "target": "100", K + "target-utilization-percentage": "90"}, 0, 100.0, 90.0),
        ({K + "target": "1"}, 0, 1.0, 0.7),
        ({K + "class": "hpa"}, 0, 80.0, 80.0),  # cpu: percent of the request
        ({K + "class": "hpa", K + "metric": "memory"}, 0, 256.0, 256.0),  # MiB
    ],
)
def test_the_target_is_resolved_as_knative_does(annotations, container_concurrency, target, target_value):
    spec = parse_annotations(annotations, container_concurrency)
    assert (spec.target, spec.target_value) == (target, target_value)


@pytest.mark.parametrize(
    ("annotations", "window", "panic_window", "panic_threshold"),
    [
        ({K + "window": "1h"}, 3600.0, 360.0, 2.0),
        ({K + "window": "6s", K + "panic-window-percentage": "1"}, 6.0, 1.0, 2.0),  # never below one second
        ({K + "window": "20s", K + "panic-window-percentage": "15"}, 20.0, 3.0, 2.0),
        ({K + "panic-threshold-percentage": "150.5"}, 60.0, 6.0, 1.505),
    ],
)
def test_window_annotations_resolve_to_both_windows_and_the_panic_threshold(
    annotations, window, panic_window, panic_threshold
):
    spec = parse_annotations(annotations, 0)
    assert (spec.stable_window, spec.panic_window, spec.panic_threshold) == (window, panic_window, panic_threshold)


def test_durations_and_counts_are_resolved():
    spec = parse_annotations({K + "scale-down-delay": "1m", K + "scale-to-zero-pod-retention-period": "1m30s",
                              K + "initial-scale": "3", K + "max-scale": "10", K + "activation-scale": "2",
                              K + "schedule": "0 9 * * * for 1h: 4"}, 0)  # fmt: skip
    assert (spec.scale_down_delay, spec.scale_to_zero_pod_retention_period) == (60.0, 90.0)
    assert (spec.initial_scale, spec.max_scale, spec.activation_scale, spec.schedule.highest) == (3, 10, 2, 4)


def test_zero_initial_scale_is_allowed_when_the_config_allows_it():
    spec = parse_annotations({K + "initial-scale": "0"}, 0, parse_config({"allow-zero-initial-scale": "true"}))
    assert spec.initial_scale == 0


BAD_ANNOTATIONS = [
    ({K + "min-scale": "-1"}, f'{K}min-scale: must be an integer >= 0; got "-1"'),
    ({K + "max-scale": "ten"}, f'{K}max-scale: must be an integer >= 0; got "ten"'),
    ({K + "initial-scale": "1.5"}, f'{K}initial-scale: must be an integer >= 0; got "1.5"'),
    ({K + "activation-scale": "0"}, f'{K}activation-scale: must be an integer >= 1; got "0"'),
    ({KN + "minScale": "-2"}, f'{KN}minScale: must be an integer >= 0; got "-2"'),
    ({K + "class": "keda"}, f"{K}class: must be kpa or hpa (or Knative's kpa.autoscaling.knative.dev, "
                            f'hpa.autoscaling.knative.dev); got "keda"'),
    ({K + "metric": "latency"}, f'{K}metric: must be concurrency or rps (class kpa), or cpu or memory (class hpa); '
                                f'got "latency"'),
    ({K + "target": "0"}, f'{K}target: must be a number >= 0.01; got "0"'),
    ({K + "target": "lots"}, f'{K}target: must be a number >= 0.01; got "lots"'),
    ({K + "target-utilization-percentage": "120"},
     f'{K}target-utilization-percentage: must be a number from 1 to 100; got "120"'),
    ({K + "window": "5s"}, f'{K}window: must be a duration from 6s to 1h, {LIKE}; got "5s"'),
    ({K + "window": "2h"}, f'{K}window: must be a duration from 6s to 1h, {LIKE}; got "2h"'),
    ({K + "window": "60"}, f'{K}window: must be a duration from 6s to 1h, {LIKE}; got "60"'),
    ({K + "window": "6500ms"}, f'{K}window: must be a whole number of seconds, like 60s or 1m30s; got "6500ms"'),
    ({K + "panic-window-percentage": "0.5"}, f'{K}panic-window-percentage: must be a number from 1 to 100; got "0.5"'),
    ({K + "panic-threshold-percentage": "100"},
     f'{K}panic-threshold-percentage: must be a number from 110 to 1000; got "100"'),
    ({K + "scale-down-delay": "-5s"},
     f'{K}scale-down-delay: must be a duration from 0s to 1h, {LIKE}; got "-5s"'),
    ({K + "scale-to-zero-pod-retention-period": "forever"},
     f'{K}scale-to-zero-pod-retention-period: must be a duration from 0s to 1h, {LIKE}; got "forever"'),
    ({K + "target-burst-capacity": "-2"},
     f'{K}target-burst-capacity: must be a number >= 0, or -1 for unlimited; got "-2"'),
    ({K + "schedule": "0 9 * * * for 8h"},
     f'{K}schedule: entry 1 ("0 9 * * * for 8h"): is not <cron: 5 fields> for <duration>: <min-scale>, '
     "e.g. 0 9 * * 1-5 for 8h: 3"),
    ({K + "minscale": "1"}, f'{K}minscale: is not an autoscaling annotation (did you mean "min-scale"?); known: class, '
     "metric, target, target-utilization-percentage, window, panic-window-percentage, panic-threshold-percentage, "
     "min-scale, max-scale, initial-scale, activation-scale, scale-down-delay, scale-to-zero-pod-retention-period, "
     "target-burst-capacity, schedule"),
    # across knobs
    ({K + "min-scale": "3", K + "max-scale": "2"},
     f"{K}min-scale: min-scale 3 is above max-scale 2; lower min-scale or raise max-scale (0 is unlimited)"),
    ({K + "activation-scale": "5", K + "max-scale": "2"},
     f"{K}activation-scale: activation-scale 5 is above max-scale 2; lower activation-scale or raise max-scale "
     "(0 is unlimited)"),
    ({K + "schedule": "0 9 * * * for 1h: 6", K + "max-scale": "4"},
     f"{K}schedule: the largest min-scale of schedule 6 is above max-scale 4; lower the largest min-scale of "
     "schedule or raise max-scale (0 is unlimited)"),
    ({K + "initial-scale": "0"},
     f'{K}initial-scale: may be 0 only when config allow-zero-initial-scale is "true"; got "0"'),
    ({K + "class": "hpa", K + "metric": "rps"}, f'{K}metric: class hpa scales on cpu or memory; got "rps", which '
     "needs class kpa"),
    ({K + "metric": "cpu"}, f'{K}metric: class kpa scales on concurrency or rps; got "cpu", which needs class hpa'),
    ({K + "class": "hpa", K + "target-utilization-percentage": "80"},
     f'{K}target-utilization-percentage: applies to class kpa only, and class is hpa; got "80"'),
    ({K + "class": "hpa", K + "scale-down-delay": "30s"},
     f'{K}scale-down-delay: applies to class kpa only, and class is hpa; got "30s"'),
]  # fmt: skip


@pytest.mark.parametrize(("annotations", "message"), BAD_ANNOTATIONS)
def test_bad_annotations_say_which_key_what_value_and_what_is_allowed(annotations, message):
    with pytest.raises(InvalidKnob) as error:
        parse_annotations(annotations, 0)
    assert str(error.value) == message
    assert error.value.key in annotations


@pytest.mark.parametrize(
    ("config", "annotations", "message"),
    [
        ({"allow-zero-initial-scale": "true", "enable-scale-to-zero": "false"}, {K + "initial-scale": "0"},
         f'{K}initial-scale: may be 0 only when config enable-scale-to-zero is "true"; got "0"'),
        ({"max-scale-limit": "10", "max-scale": "5"}, {K + "max-scale": "20"},
         f'{K}max-scale: must be from 1 to max-scale-limit (10); got "20"'),
        ({"max-scale-limit": "10", "max-scale": "5"}, {K + "max-scale": "0"},
         f'{K}max-scale: must be from 1 to max-scale-limit (10); got "0"'),
        ({"max-scale": "2"}, {K + "min-scale": "3"},
         f"{K}min-scale: min-scale 3 is above max-scale 2; lower min-scale or raise max-scale (0 is unlimited)"),
    ],
)  # fmt: skip
def test_annotations_are_checked_against_the_config(config, annotations, message):
    with pytest.raises(InvalidKnob, match=None) as error:
        parse_annotations(annotations, 0, parse_config(config))
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stable-windw": "60s"},
         'stable-windw: is not a config-autoscaler key (did you mean "stable-window"?); known: '),
        ({"max-scale-up-rate": "1"}, 'max-scale-up-rate: must be a number > 1; got "1"'),
        ({"max-scale-down-rate": "0.5"}, 'max-scale-down-rate: must be a number > 1; got "0.5"'),
        ({"enable-scale-to-zero": "yes"}, 'enable-scale-to-zero: must be true or false; got "yes"'),
        ({"scale-to-zero-grace-period": "0s"},
         f'scale-to-zero-grace-period: must be a duration longer than 0s, {LIKE}; got "0s"'),
        ({"stable-window": "2s"}, f'stable-window: must be a duration from 6s to 1h, {LIKE}; got "2s"'),
        ({"container-concurrency-target-percentage": "0"},
         'container-concurrency-target-percentage: must be a number above 0 and at most 100; got "0"'),
        ({"pod-autoscaler-class": "vpa"}, "pod-autoscaler-class: must be kpa or hpa"),
        ({"initial-scale": "0"},
         'initial-scale: may be 0 only when allow-zero-initial-scale and enable-scale-to-zero are "true"; got "0"'),
        ({"max-scale-limit": "10"}, 'max-scale: must be from 1 to max-scale-limit (10); got "0"'),
        ({"min-scale": "3", "max-scale": "2"}, 'min-scale: must be <= max-scale (2); got "3"'),
        ({"container-concurrency-target-default": "0.01"}, "container-concurrency-target-percentage: with "
         "container-concurrency-target-default gives a target of 0.007, below 0.01"),
    ],
)  # fmt: skip
def test_bad_config_says_which_key_what_value_and_what_is_allowed(data, message):
    with pytest.raises(InvalidKnob) as error:
        parse_config(data)
    assert str(error.value).startswith(message)


def test_config_documentation_keys_are_ignored():
    assert parse_config({"_example": "# the defaults, explained"}) == DEFAULT_CONFIG


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5h", 5400.0), ("0", 0.0), ("2h45m", 9900.0)],
)
def test_go_durations_parse_to_seconds_and_format_back_to_the_same_value(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "60", "1 m", "m", "1d", "1h-30m"])
def test_text_that_is_not_a_go_duration_is_refused_saying_so(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_the_docs_table_lists_every_knob_with_its_default_and_unit():
    docs = knobs_markdown()
    for knob in (*ANNOTATION_KNOBS, *CONFIG_KNOBS):
        assert f"| `{knob.name}` |" in docs
    assert "| `window` | `60s` (config `stable-window`) | duration |" in docs
    assert "| `scale-to-zero-grace-period` | `30s` | duration |" in docs
