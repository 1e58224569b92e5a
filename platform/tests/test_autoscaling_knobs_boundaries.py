"""Every autoscaling knob at its minimum and its maximum, and one step past each, with the
message a person gets; and the cross-checks between knobs at their exact limits."""

import pytest

from knit.autoscaling.knobs import PREFIX, InvalidKnob, knobs_markdown, parse_annotations, parse_config

DURATIONS = '"60s", "1m30s", "500ms", "1h"'

# (key, a value at the edge that is accepted, what it resolves to)
CONFIG_AT_THE_EDGE = [
    ("max-scale-up-rate", "1.01", 1.01),  # "above 1"
    ("max-scale-down-rate", "1.01", 1.01),
    ("scale-to-zero-grace-period", "1ms", 0.001),  # longer than 0s
    ("scale-to-zero-pod-retention-period", "0s", 0.0),
    ("scale-to-zero-pod-retention-period", "1h", 3600.0),
    ("tick-interval", "1ms", 0.001),
    ("stable-window", "6s", 6.0),
    ("stable-window", "1h", 3600.0),
    ("panic-window-percentage", "1", 1.0),
    ("panic-window-percentage", "100", 100.0),
    ("panic-threshold-percentage", "110", 110.0),
    ("panic-threshold-percentage", "1000", 1000.0),
    ("container-concurrency-target-default", "0.015", 0.015),  # 70% of it: just above the 0.01 target minimum
    ("container-concurrency-target-percentage", "1", 100.0),  # up to 1 is a fraction: all of the target
    ("container-concurrency-target-percentage", "1.5", 1.5),  # above 1 is a percentage
    ("container-concurrency-target-percentage", "100", 100.0),
    ("requests-per-second-target-default", "0.01", 0.01),
    ("target-burst-capacity", "-1", -1.0),
    ("target-burst-capacity", "0", 0.0),
    ("activation-scale", "1", 1),
    ("initial-scale", "1", 1),
    ("min-scale", "0", 0),
    ("max-scale", "0", 0),
    ("scale-down-delay", "0s", 0.0),
    ("scale-down-delay", "1h", 3600.0),
    ("max-scale-limit", "0", 0),
]


@pytest.mark.parametrize(
    ("key", "text", "value"), CONFIG_AT_THE_EDGE, ids=[f"{k}={t}" for k, t, _ in CONFIG_AT_THE_EDGE]
)
def test_given_a_config_value_exactly_at_its_limit_then_it_is_accepted(key, text, value):
    assert getattr(parse_config({key: text}), key.replace("-", "_")) == pytest.approx(value)


CONFIG_PAST_THE_EDGE = [
    ("max-scale-up-rate", "1", "must be a number > 1"),
    ("max-scale-down-rate", "1", "must be a number > 1"),
    ("scale-to-zero-grace-period", "0s", f"must be a duration longer than 0s, like {DURATIONS}"),
    ("scale-to-zero-grace-period", "-1s", f"must be a duration longer than 0s, like {DURATIONS}"),
    ("scale-to-zero-grace-period", "soon", f"must be a duration longer than 0s, like {DURATIONS}"),
    ("scale-to-zero-pod-retention-period", "-1s", f"must be a duration from 0s to 1h, like {DURATIONS}"),
    ("scale-to-zero-pod-retention-period", "1h0m1s", f"must be a duration from 0s to 1h, like {DURATIONS}"),
    ("tick-interval", "0s", f"must be a duration longer than 0s, like {DURATIONS}"),
    ("stable-window", "5s", f"must be a duration from 6s to 1h, like {DURATIONS}"),
    ("stable-window", "3601s", f"must be a duration from 6s to 1h, like {DURATIONS}"),
    ("stable-window", "6.5s", "must be a whole number of seconds, like 60s or 1m30s"),
    ("stable-window", "soon", f"must be a duration from 6s to 1h, like {DURATIONS}"),
    ("panic-window-percentage", "0.99", "must be a number from 1 to 100"),
    ("panic-window-percentage", "100.01", "must be a number from 1 to 100"),
    ("panic-threshold-percentage", "109.9", "must be a number from 110 to 1000"),
    ("panic-threshold-percentage", "1000.1", "must be a number from 110 to 1000"),
    ("container-concurrency-target-default", "0.009", "must be a number >= 0.01"),
    ("container-concurrency-target-default", "many", "must be a number >= 0.01"),
    ("container-concurrency-target-percentage", "0", "must be a number above 0 and at most 100"),
    ("container-concurrency-target-percentage", "100.5", "must be a number above 0 and at most 100"),
    ("requests-per-second-target-default", "0", "must be a number >= 0.01"),
    ("target-burst-capacity", "-0.5", "must be a number >= 0, or -1 for unlimited"),
    ("target-burst-capacity", "-2", "must be a number >= 0, or -1 for unlimited"),
    ("target-burst-capacity", "lots", "must be a number >= 0, or -1 for unlimited"),
    ("activation-scale", "0", "must be an integer >= 1"),
    ("initial-scale", "-1", "must be an integer >= 0"),
    ("min-scale", "-1", "must be an integer >= 0"),
    ("min-scale", "1.5", "must be an integer >= 0"),
    ("min-scale", "x", "must be an integer >= 0"),
    ("max-scale", "-1", "must be an integer >= 0"),
    ("scale-down-delay", "3601s", f"must be a duration from 0s to 1h, like {DURATIONS}"),
    ("scale-down-delay", "0.5s", "must be a whole number of seconds, like 60s or 1m30s"),
    ("max-scale-limit", "-1", "must be an integer >= 0"),
]


@pytest.mark.parametrize(
    ("key", "text", "allowed"), CONFIG_PAST_THE_EDGE, ids=[f"{k}={t}" for k, t, _ in CONFIG_PAST_THE_EDGE]
)
def test_given_a_config_value_one_step_past_its_limit_then_the_message_names_key_value_and_range(key, text, allowed):
    with pytest.raises(InvalidKnob) as raised:
        parse_config({key: text})
    assert str(raised.value) == f'{key}: {allowed}; got "{text}"'


def spec(annotations=None, config=None, container_concurrency=0):
    named = {(key if "/" in key else PREFIX + key): value for key, value in (annotations or {}).items()}
    return parse_annotations(named, container_concurrency, parse_config(config or {}))


def refusal(annotations=None, config=None):
    with pytest.raises(InvalidKnob) as raised:
        spec(annotations, config)
    return raised.value


@pytest.mark.parametrize(
    ("annotations", "field", "value"),
    [
        ({"target": "0.01"}, "target", 0.01),
        ({"target-utilization-percentage": "1"}, "target_utilization", 0.01),
        ({"target-utilization-percentage": "100"}, "target_utilization", 1.0),
        ({"window": "6s"}, "stable_window", 6.0),
        ({"window": "1h"}, "stable_window", 3600.0),
        ({"panic-window-percentage": "1"}, "panic_window", 1.0),  # 0.6s rounds up to one bucket
        ({"panic-threshold-percentage": "110"}, "panic_threshold", 1.1),
        ({"min-scale": "3", "max-scale": "3"}, "min_scale", 3),  # min-scale may equal max-scale
        ({"activation-scale": "3", "max-scale": "3"}, "activation_scale", 3),
        ({"scale-down-delay": "1h"}, "scale_down_delay", 3600.0),
    ],
)
def test_given_an_annotation_exactly_at_its_limit_then_it_is_accepted(annotations, field, value):
    assert getattr(spec(annotations), field) == pytest.approx(value)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"target": "0.009"}, 'autoscaling.knit.dev/target: must be a number >= 0.01; got "0.009"'),
        ({"window": "5s"}, f'autoscaling.knit.dev/window: must be a duration from 6s to 1h, like {DURATIONS}; '
                           'got "5s"'),
        ({"min-scale": "2", "max-scale": "1"}, "autoscaling.knit.dev/min-scale: min-scale 2 is above max-scale 1; "
                                               "lower min-scale or raise max-scale (0 is unlimited)"),
        ({"class": "kpa.autoscaling.knit.dev", "metric": "cpu"},
         'autoscaling.knit.dev/metric: class kpa scales on concurrency or rps; got "cpu", which needs class hpa'),
        ({"autoscaling.knative.dev/metric": "cpu"},
         'autoscaling.knative.dev/metric: class kpa scales on concurrency or rps; got "cpu", which needs class hpa'),
    ],
)  # fmt: skip
def test_given_an_annotation_past_its_limit_then_the_message_names_the_key_as_written(annotations, message):
    assert str(refusal(annotations)) == message


def test_given_a_limit_broken_by_a_config_value_then_the_message_names_the_max_scale_key():
    error = refusal(config={"max-scale": "2", "activation-scale": "3"})
    assert str(error) == (
        "autoscaling.knit.dev/max-scale: activation-scale 3 is above max-scale 2; "
        "lower activation-scale or raise max-scale (0 is unlimited)"
    )


def test_given_max_scale_written_as_knatives_camel_case_then_a_limit_message_names_that_key():
    assert refusal({"autoscaling.knative.dev/maxScale": "2"}, {"min-scale": "3"}).key == (
        "autoscaling.knative.dev/maxScale"
    )


def test_given_a_camel_case_name_with_knits_prefix_then_it_is_refused_with_the_kebab_case_suggestion():
    error = refusal({"autoscaling.knit.dev/minScale": "2"})
    assert str(error).startswith(
        'autoscaling.knit.dev/minScale: is not an autoscaling annotation (did you mean "min-scale"?); known: class, '
    )


def test_given_an_unknown_annotation_like_no_known_one_then_no_suggestion_is_made():
    assert str(refusal({"autoscaling.knit.dev/zzz": "2"})).startswith(
        "autoscaling.knit.dev/zzz: is not an autoscaling annotation; known: class, metric, target, "
    )


def test_given_an_unknown_config_key_then_the_message_lists_the_known_keys_separated_by_commas():
    with pytest.raises(InvalidKnob) as raised:
        parse_config({"stable-windw": "60s"})
    assert str(raised.value).startswith(
        'stable-windw: is not a config-autoscaler key (did you mean "stable-window"?); '
        "known: pod-autoscaler-class, enable-scale-to-zero, max-scale-up-rate, "
    )


@pytest.mark.parametrize(
    ("config", "annotations", "max_scale"),
    [({"max-scale-limit": "1", "max-scale": "1"}, {"max-scale": "1"}, 1), ({"max-scale-limit": "5", "max-scale": "5"},
                                                                            {"max-scale": "5"}, 5)],
    ids=["limit 1", "limit 5"],
)  # fmt: skip
def test_given_max_scale_limit_then_max_scale_exactly_at_the_limit_is_accepted(config, annotations, max_scale):
    assert spec(annotations, config).max_scale == max_scale


@pytest.mark.parametrize(
    ("config", "annotations", "message"),
    [
        ({"max-scale-limit": "1"}, None, 'max-scale: must be from 1 to max-scale-limit (1); got "0"'),
        ({"max-scale-limit": "1", "max-scale": "2"}, None, 'max-scale: must be from 1 to max-scale-limit (1); got "2"'),
        ({"max-scale-limit": "1", "max-scale": "1"}, {"max-scale": "2"},
         'autoscaling.knit.dev/max-scale: must be from 1 to max-scale-limit (1); got "2"'),
        ({"max-scale-limit": "5", "max-scale": "5"}, {"max-scale": "0"},
         'autoscaling.knit.dev/max-scale: must be from 1 to max-scale-limit (5); got "0"'),
        ({"min-scale": "2", "max-scale": "1"}, None, 'min-scale: must be <= max-scale (1); got "2"'),
    ],
)  # fmt: skip
def test_given_max_scale_limit_then_a_max_scale_one_past_it_or_unlimited_is_refused(config, annotations, message):
    with pytest.raises(InvalidKnob) as raised:
        spec(annotations, config)
    assert str(raised.value) == message


def test_given_min_scale_equal_to_max_scale_in_the_config_then_it_is_accepted():
    config = parse_config({"min-scale": "3", "max-scale": "3"})
    assert (config.min_scale, config.max_scale) == (3, 3)


def test_given_a_concurrency_target_of_exactly_the_minimum_after_the_percentage_then_the_config_is_accepted():
    config = parse_config(
        {"container-concurrency-target-default": "0.01", "container-concurrency-target-percentage": "100"}
    )
    assert config.container_concurrency_target_default == 0.01


def test_given_container_concurrency_1_then_a_larger_target_is_capped_at_1():
    assert spec({"target": "10"}, container_concurrency=1).target == 1


def test_given_knits_own_class_domain_then_it_names_the_class():
    assert spec({"class": "hpa.autoscaling.knit.dev"}).autoscaler_class == "hpa"


def test_given_class_hpa_then_the_whole_target_is_aimed_for():
    resolved = spec({"class": "hpa", "target": "60"})
    assert (resolved.target_utilization, resolved.target_value) == (1.0, 60.0)


def test_given_the_docs_then_the_tables_are_markdown_with_defaults_units_and_kpa_only_marks():
    lines = knobs_markdown().split("\n")
    assert lines[:4] == [
        "### Revision annotations (`autoscaling.knit.dev/<name>`, alias `autoscaling.knative.dev/<name>`)",
        "",
        "| name | default | unit | what it does |",
        "|---|---|---|---|",
    ]
    assert lines[5] == (
        "| `metric` | see doc |  | What to scale on: concurrency (default) or rps for kpa; cpu (default) "
        "or memory for hpa. |"
    )
    assert "| `window` | `60s` (config `stable-window`) | duration |" in lines[8]
    assert lines[9].endswith("Panic window as a percentage of the stable window. kpa only. |")
    start = lines.index("### Platform settings (`config-autoscaler` keys)")
    assert lines[start - 1 : start + 4] == [
        "",
        "### Platform settings (`config-autoscaler` keys)",
        "",
        "| key | default | unit | what it does |",
        "|---|---|---|---|",
    ]
    assert lines[-2:] == [
        "| `max-scale-limit` | `0` | instances | Highest max-scale a Revision may set; 0 is no limit. |",
        "",
    ]
