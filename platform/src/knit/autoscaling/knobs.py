"""Every autoscaling knob, defined once: name, default, unit, parser and doc.

Two tables, read by manifest validation, the runtime, the simulator and the docs:

- `ANNOTATION_KNOBS`: per-Revision annotations `autoscaling.knit.dev/<name>`. Knative's
  `autoscaling.knative.dev/<name>` (and its older camelCase names, `minScale`) are aliases;
  when both are given the knit one wins. Any other annotation is not ours and is ignored.
- `CONFIG_KNOBS`: platform-wide settings with the keys and defaults of Knative's
  `config-autoscaler` ConfigMap. An annotation overrides the matching setting.

`parse_config` and `parse_annotations` resolve them into plain values (seconds, floats,
ints). Bad input raises `InvalidKnob`, whose message names the key and the value, says what
was wrong and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from knit.autoscaling.schedule import InvalidSchedule, Schedule, parse_schedule
from knit.durations import EXAMPLES, format_duration, parse_duration

PREFIX = "autoscaling.knit.dev/"
KNATIVE_PREFIX = "autoscaling.knative.dev/"

KPA, HPA = "kpa", "hpa"
KPA_METRICS = ("concurrency", "rps")
HPA_METRICS = ("cpu", "memory")
TARGET_MIN = 0.01  # Knative's autoscaling.TargetMin
WINDOW_MIN, WINDOW_MAX = 6.0, 3600.0  # Knative's autoscaling.WindowMin/WindowMax
HPA_SCALE_DOWN_STABILIZATION = 300.0  # Kubernetes' default behavior.scaleDown.stabilizationWindowSeconds


class InvalidKnob(ValueError):
    """`key: message`, e.g. `autoscaling.knit.dev/min-scale: must be an integer >= 0; got "-1"`."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


# --- Parsers: text -> value, or ValueError saying what is allowed ----------------------------

Parser = Callable[[str], Any]


class _NamesTheValue(ValueError):
    """A parser's message that already quotes the wrong part of the value."""


def _integer(minimum: int) -> Parser:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()) or int(text) < minimum:
            raise ValueError(f"must be an integer >= {minimum}")
        return int(text)

    return parse


def _float(text: str) -> float:
    value = float(text)  # ValueError for non-numbers
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _number(minimum: float, maximum: float | None = None, *, above: bool = False) -> Parser:
    if maximum is not None and above:
        allowed = f"must be a number above {minimum:g} and at most {maximum:g}"
    elif maximum is not None:
        allowed = f"must be a number from {minimum:g} to {maximum:g}"
    else:
        allowed = f"must be a number {'>' if above else '>='} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = _float(text)
        except ValueError:
            raise ValueError(allowed) from None
        if value < minimum or (above and value == minimum) or (maximum is not None and value > maximum):
            raise ValueError(allowed)
        return value

    return parse


def _duration(minimum: float, maximum: float | None = None, *, whole_seconds: bool = False) -> Parser:
    if maximum is None:
        allowed = f"must be a duration of at least {format_duration(minimum)}, like {EXAMPLES}"
    else:
        allowed = f"must be a duration from {format_duration(minimum)} to {format_duration(maximum)}, like {EXAMPLES}"

    def parse(text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise ValueError(allowed) from None
        if seconds < minimum or (maximum is not None and seconds > maximum):
            raise ValueError(allowed)
        if whole_seconds and seconds != round(seconds):
            raise ValueError("must be a whole number of seconds, like 60s or 1m30s")
        return seconds

    return parse


def _positive_duration(text: str) -> float:
    allowed = f"must be a duration longer than 0s, like {EXAMPLES}"  # "at least 0s" would invite 0s
    try:
        seconds = _duration(0.0)(text)
    except ValueError:
        raise ValueError(allowed) from None
    if seconds <= 0:
        raise ValueError(allowed)
    return seconds


def _boolean(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return text.strip().lower() == "true"


def _class(text: str) -> str:
    # Knative writes the class as kpa.autoscaling.knative.dev / hpa.autoscaling.knative.dev.
    value = text.strip()
    for domain in (".autoscaling.knative.dev", ".autoscaling.knit.dev"):
        value = value.removesuffix(domain)
    if value not in (KPA, HPA):
        raise ValueError("must be kpa or hpa (or Knative's kpa.autoscaling.knative.dev, hpa.autoscaling.knative.dev)")
    return value


def _metric(text: str) -> str:
    if text.strip() not in (*KPA_METRICS, *HPA_METRICS):
        raise ValueError("must be concurrency or rps (class kpa), or cpu or memory (class hpa)")
    return text.strip()


def _burst_capacity(text: str) -> float:
    try:
        value = _float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 or value == -1):
        raise ValueError("must be a number >= 0, or -1 for unlimited")
    return value


def _target_percentage(text: str) -> float:
    # Knative reads values up to 1 as a fraction (0.7), for legacy reasons; larger ones as percent.
    value = _number(0.0, 100.0, above=True)(text)
    return value * 100 if value <= 1 else value


def _schedule(text: str) -> Schedule:
    try:
        return parse_schedule(text)
    except InvalidSchedule as error:
        raise _NamesTheValue(str(error)) from None


# --- The knobs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knob:
    name: str
    default: str | None  # as written in YAML or the ConfigMap; None: derived from other knobs (see doc)
    unit: str
    parse: Parser
    doc: str
    setting: str | None = None  # annotations: the config-autoscaler key whose value is the default
    kpa_only: bool = False  # annotations that mean nothing to the hpa class, so giving them there is an error

    def read(self, key: str, text: str) -> Any:
        try:
            return self.parse(text)
        except _NamesTheValue as error:
            raise InvalidKnob(key, str(error)) from None
        except ValueError as error:
            raise InvalidKnob(key, f'{error}; got "{text}"') from None


CONFIG_KNOBS: tuple[Knob, ...] = (
    Knob("pod-autoscaler-class", KPA, "", _class, "Autoscaler class of Revisions that do not name one."),
    Knob("enable-scale-to-zero", "true", "", _boolean, "Whether kpa-class Revisions may scale to zero."),
    Knob("max-scale-up-rate", "1000", "ratio", _number(1.0, above=True),
         "Most instances one decision may ask for, as a multiple of the ready ones."),
    Knob("max-scale-down-rate", "2", "ratio", _number(1.0, above=True),
         "Fewest instances one decision may keep, as a fraction (1/rate) of the ready ones, while routable."),
    Knob("scale-to-zero-grace-period", "30s", "duration", _positive_duration,
         "How long the last instance stays after the decision to scale to zero."),
    Knob("scale-to-zero-pod-retention-period", "0s", "duration", _duration(0.0, WINDOW_MAX),
         "Least time the last instance stays after the decision to scale to zero."),
    Knob("tick-interval", "2s", "duration", _positive_duration, "How often the autoscaler decides."),
    Knob("stable-window", "60s", "duration", _duration(WINDOW_MIN, WINDOW_MAX, whole_seconds=True),
         "Window the stable average is taken over."),
    Knob("panic-window-percentage", "10", "percent", _number(1.0, 100.0),
         "Panic window, as a percentage of the stable window."),
    Knob("panic-threshold-percentage", "200", "percent", _number(110.0, 1000.0),
         "Panic starts when the panic window asks for this percentage of the ready instances."),
    Knob("container-concurrency-target-default", "100", "requests", _number(TARGET_MIN),
         "Per-instance concurrency target when containerConcurrency is 0 and no target is given."),
    Knob("container-concurrency-target-percentage", "70", "percent", _target_percentage,
         "Share of the concurrency target the autoscaler aims for (values up to 1 are fractions)."),
    Knob("requests-per-second-target-default", "200", "requests/s", _number(TARGET_MIN),
         "Per-instance requests-per-second target when none is given."),
    Knob("target-burst-capacity", "211", "requests", _burst_capacity,
         "Spare requests to absorb before the activator stays in the path; -1 unlimited, 0 never."),
    Knob("activation-scale", "1", "instances", _integer(1), "Least instances whenever there is traffic."),
    Knob("initial-scale", "1", "instances", _integer(0), "Instances a new Revision starts with."),
    Knob("allow-zero-initial-scale", "false", "", _boolean, "Whether initial-scale may be 0."),
    Knob("min-scale", "0", "instances", _integer(0), "Least instances of a routable Revision."),
    Knob("max-scale", "0", "instances", _integer(0), "Most instances of a Revision; 0 is unlimited."),
    Knob("scale-down-delay", "0s", "duration", _duration(0.0, WINDOW_MAX, whole_seconds=True),
         "Scale down only to the largest decision made within this time."),
    Knob("max-scale-limit", "0", "instances", _integer(0), "Highest max-scale a Revision may set; 0 is no limit."),
)  # fmt: skip

ANNOTATION_KNOBS: tuple[Knob, ...] = (
    Knob("class", None, "", _class, "Autoscaler: kpa (Knative's, scales on requests, to zero) or hpa "
         "(Kubernetes', scales on cpu or memory, never to zero).", setting="pod-autoscaler-class"),
    Knob("metric", None, "", _metric, "What to scale on: concurrency (default) or rps for kpa; cpu (default) "
         "or memory for hpa."),
    Knob("target", None, "per instance", _number(TARGET_MIN),
         "Per-instance target of the metric: concurrency 100 (containerConcurrency when > 0, which also caps "
         "it), rps 200, cpu 80 (percent of the CPU request), memory 256 (MiB)."),
    Knob("target-utilization-percentage", None, "percent", _number(1.0, 100.0),
         "Share of the target the kpa aims for: 70 (config container-concurrency-target-percentage for "
         "concurrency).", kpa_only=True),
    Knob("window", None, "duration", _duration(WINDOW_MIN, WINDOW_MAX, whole_seconds=True),
         "Stable window (kpa); for hpa, the scale up and down stabilization window.", setting="stable-window"),
    Knob("panic-window-percentage", None, "percent", _number(1.0, 100.0),
         "Panic window as a percentage of the stable window.", setting="panic-window-percentage", kpa_only=True),
    Knob("panic-threshold-percentage", None, "percent", _number(110.0, 1000.0),
         "Panic when the panic window asks for this percentage of the ready instances.",
         setting="panic-threshold-percentage", kpa_only=True),
    Knob("min-scale", None, "instances", _integer(0), "Least instances while the Revision is routable.",
         setting="min-scale"),
    Knob("max-scale", None, "instances", _integer(0), "Most instances; 0 is unlimited.", setting="max-scale"),
    Knob("initial-scale", None, "instances", _integer(0), "Instances to reach once before scaling on traffic; "
         "0 needs allow-zero-initial-scale and scale to zero.", setting="initial-scale"),
    Knob("activation-scale", None, "instances", _integer(1), "Least instances whenever there is traffic, "
         "including the first request to a Revision at zero.", setting="activation-scale", kpa_only=True),
    Knob("scale-down-delay", None, "duration", _duration(0.0, WINDOW_MAX, whole_seconds=True),
         "Scale down only to the largest decision made within this time.", setting="scale-down-delay",
         kpa_only=True),
    Knob("scale-to-zero-pod-retention-period", None, "duration", _duration(0.0, WINDOW_MAX),
         "Least time the last instance stays after the decision to scale to zero.",
         setting="scale-to-zero-pod-retention-period", kpa_only=True),
    Knob("target-burst-capacity", None, "requests", _burst_capacity,
         "Spare requests to absorb before the activator stays in the path; -1 unlimited.",
         setting="target-burst-capacity", kpa_only=True),
    Knob("schedule", "", "", _schedule, "knit's timed min-scale: `;`-separated entries "
         "`[CRON_TZ=<zone> ]<5-field cron> for <duration>: <min-scale>`, e.g. `0 9 * * 1-5 for 8h: 3`; "
         "the largest min-scale of the windows open now applies (local time unless CRON_TZ)."),
)  # fmt: skip

CONFIG = {knob.name: knob for knob in CONFIG_KNOBS}
ANNOTATIONS = {knob.name: knob for knob in ANNOTATION_KNOBS}
KNOBS = {"annotations": ANNOTATION_KNOBS, "config-autoscaler": CONFIG_KNOBS}
UTILIZATION_DEFAULT = 70.0  # Knative's TargetUtilization for rps (concurrency reads the config)
HPA_TARGET_DEFAULTS = {"cpu": 80.0, "memory": 256.0}


# --- Resolved values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoscalerConfig:
    """config-autoscaler, resolved: durations in seconds, percentages as given (70 is 70%)."""

    pod_autoscaler_class: str
    enable_scale_to_zero: bool
    max_scale_up_rate: float
    max_scale_down_rate: float
    scale_to_zero_grace_period: float
    scale_to_zero_pod_retention_period: float
    tick_interval: float
    stable_window: float
    panic_window_percentage: float
    panic_threshold_percentage: float
    container_concurrency_target_default: float
    container_concurrency_target_percentage: float
    requests_per_second_target_default: float
    target_burst_capacity: float
    activation_scale: int
    initial_scale: int
    allow_zero_initial_scale: bool
    min_scale: int
    max_scale: int
    scale_down_delay: float
    max_scale_limit: int


@dataclass(frozen=True)
class AutoscalingSpec:
    """Everything one Revision's autoscaler needs, resolved: seconds, ratios, instance counts."""

    autoscaler_class: str  # kpa | hpa
    metric: str  # concurrency | rps (kpa), cpu | memory (hpa)
    target: float  # per instance: what one instance should carry at most (Knative's TotalValue)
    target_utilization: float  # fraction of the target the kpa aims for
    target_value: float  # target × utilization: what the kpa aims for per instance
    container_concurrency: int
    stable_window: float
    panic_window: float
    panic_threshold: float  # ratio: desired panic instances / ready instances
    min_scale: int
    max_scale: int  # 0 is unlimited
    initial_scale: int
    activation_scale: int
    scale_down_delay: float
    scale_to_zero_pod_retention_period: float
    target_burst_capacity: float  # -1 is unlimited
    schedule: Schedule
    max_scale_up_rate: float
    max_scale_down_rate: float
    enable_scale_to_zero: bool
    scale_to_zero_grace_period: float
    tick_interval: float
    scale_up_stabilization: float  # hpa: Kubernetes' behavior.scaleUp.stabilizationWindowSeconds
    scale_down_stabilization: float  # hpa: behavior.scaleDown.stabilizationWindowSeconds


def parse_config(data: Mapping[str, str]) -> AutoscalerConfig:
    """config-autoscaler's data; missing keys take Knative's defaults, unknown keys are errors.

    Keys starting with `_` (Knative's `_example`) are documentation and ignored.
    """
    for key in data:
        if key not in CONFIG and not key.startswith("_"):
            raise InvalidKnob(
                key, f"is not a config-autoscaler key{_suggestion(key, CONFIG)}; known: {', '.join(CONFIG)}"
            )
    values = {}
    for knob in CONFIG_KNOBS:
        assert knob.default is not None
        values[knob.name.replace("-", "_")] = knob.read(knob.name, str(data.get(knob.name, knob.default)))
    config = AutoscalerConfig(**values)
    _check_config(config)
    return config


def _check_config(config: AutoscalerConfig) -> None:
    if config.initial_scale == 0 and not (config.allow_zero_initial_scale and config.enable_scale_to_zero):
        raise InvalidKnob(
            "initial-scale", 'may be 0 only when allow-zero-initial-scale and enable-scale-to-zero are "true"; got "0"'
        )
    limit = config.max_scale_limit
    if limit > 0 and not 1 <= config.max_scale <= limit:
        raise InvalidKnob("max-scale", f'must be from 1 to max-scale-limit ({limit}); got "{config.max_scale}"')
    if 0 < config.max_scale < config.min_scale:
        raise InvalidKnob("min-scale", f'must be <= max-scale ({config.max_scale}); got "{config.min_scale}"')
    target = config.container_concurrency_target_default * config.container_concurrency_target_percentage / 100
    if target < TARGET_MIN:
        raise InvalidKnob(
            "container-concurrency-target-percentage",
            f"with container-concurrency-target-default gives a target of {target:g}, below {TARGET_MIN}",
        )


DEFAULT_CONFIG = parse_config({})


def parse_annotations(
    annotations: Mapping[str, str], container_concurrency: int, config: AutoscalerConfig = DEFAULT_CONFIG
) -> AutoscalingSpec:
    """One Revision's autoscaling annotations, resolved over the platform's config."""
    given = _autoscaling_annotations(annotations)

    def get(name: str) -> Any:
        """The annotation's value, else the matching config setting, else None."""
        knob = ANNOTATIONS[name]
        if name in given:
            return knob.read(*given[name])
        if knob.setting is not None:
            return getattr(config, knob.setting.replace("-", "_"))
        return None if knob.default is None else knob.parse(knob.default)

    def key(name: str) -> str:
        return given[name][0] if name in given else PREFIX + name

    autoscaler_class: str = get("class")
    metric: str = get("metric") or (KPA_METRICS[0] if autoscaler_class == KPA else HPA_METRICS[0])
    if metric not in (KPA_METRICS if autoscaler_class == KPA else HPA_METRICS):
        allowed = " or ".join(KPA_METRICS if autoscaler_class == KPA else HPA_METRICS)
        other = HPA if autoscaler_class == KPA else KPA
        raise InvalidKnob(
            key("metric"), f'class {autoscaler_class} scales on {allowed}; got "{metric}", which needs class {other}'
        )

    # Knative's ResolveMetricTarget: the target per instance, then the share of it to aim for.
    target: float | None = get("target")
    utilization = UTILIZATION_DEFAULT
    if metric == "concurrency":
        target = target or container_concurrency or config.container_concurrency_target_default
        if container_concurrency > 0:
            target = min(target, container_concurrency)  # never aim above the hard per-instance limit
        utilization = config.container_concurrency_target_percentage
    elif metric == "rps":
        target = target or config.requests_per_second_target_default
    else:
        target = target or HPA_TARGET_DEFAULTS[metric]
    if autoscaler_class == HPA:
        for name in given:
            if ANNOTATIONS[name].kpa_only:
                raise InvalidKnob(key(name), f'applies to class kpa only, and class is hpa; got "{given[name][1]}"')
    if "target-utilization-percentage" in given:
        utilization = get("target-utilization-percentage")

    window: float = get("window")
    minimum, maximum = get("min-scale"), get("max-scale")
    initial, activation = get("initial-scale"), get("activation-scale")
    schedule: Schedule = get("schedule")
    if maximum > 0:
        limits = (("min-scale", minimum), ("activation-scale", activation), ("schedule", schedule.highest))
        for name, value in limits:
            if value > maximum:
                what = "the largest min-scale of schedule" if name == "schedule" else name
                raise InvalidKnob(
                    key(name) if name in given else key("max-scale"),
                    f"{what} {value} is above max-scale {maximum}; lower {what} or raise max-scale (0 is unlimited)",
                )
    if config.max_scale_limit > 0 and "max-scale" in given and not 1 <= maximum <= config.max_scale_limit:
        raise InvalidKnob(
            key("max-scale"), f'must be from 1 to max-scale-limit ({config.max_scale_limit}); got "{maximum}"'
        )
    if initial == 0 and "initial-scale" in given:
        if not config.allow_zero_initial_scale:
            raise InvalidKnob(
                key("initial-scale"), 'may be 0 only when config allow-zero-initial-scale is "true"; got "0"'
            )
        if not config.enable_scale_to_zero:
            raise InvalidKnob(key("initial-scale"), 'may be 0 only when config enable-scale-to-zero is "true"; got "0"')

    # Knative's HPA class uses `window`, when given, for both stabilization windows;
    # otherwise Kubernetes' defaults: 300s before scaling down, none before scaling up.
    hpa_window = window if "window" in given else None
    return AutoscalingSpec(
        autoscaler_class=autoscaler_class,
        metric=metric,
        target=target,
        target_utilization=utilization / 100 if autoscaler_class == KPA else 1.0,
        target_value=max(TARGET_MIN, target * utilization / 100) if autoscaler_class == KPA else target,
        container_concurrency=container_concurrency,
        stable_window=window,
        # Knative rounds the panic window to whole buckets (1s), and never below one.
        panic_window=max(1.0, float(round(window * get("panic-window-percentage") / 100))),
        panic_threshold=get("panic-threshold-percentage") / 100,
        min_scale=minimum,
        max_scale=maximum,
        initial_scale=initial,
        activation_scale=activation,
        scale_down_delay=get("scale-down-delay"),
        scale_to_zero_pod_retention_period=get("scale-to-zero-pod-retention-period"),
        target_burst_capacity=get("target-burst-capacity"),
        schedule=schedule,
        max_scale_up_rate=config.max_scale_up_rate,
        max_scale_down_rate=config.max_scale_down_rate,
        enable_scale_to_zero=config.enable_scale_to_zero,
        scale_to_zero_grace_period=config.scale_to_zero_grace_period,
        tick_interval=config.tick_interval,
        scale_up_stabilization=hpa_window or 0.0,
        scale_down_stabilization=hpa_window or HPA_SCALE_DOWN_STABILIZATION,
    )


def _autoscaling_annotations(annotations: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """knob name -> (key as written, value), knit's key first, then Knative's, then its camelCase."""
    found: dict[str, tuple[str, str]] = {}
    ranked: list[tuple[int, str, str, str]] = []
    for key, value in annotations.items():
        for rank, prefix in enumerate((PREFIX, KNATIVE_PREFIX)):
            if not key.startswith(prefix):
                continue
            name = key.removeprefix(prefix)
            camel = rank == 1 and name not in ANNOTATIONS and _kebab(name) in ANNOTATIONS
            if camel:
                name, rank = _kebab(name), 2
            if name not in ANNOTATIONS:
                known = ", ".join(ANNOTATIONS)
                raise InvalidKnob(
                    key, f"is not an autoscaling annotation{_suggestion(name, ANNOTATIONS)}; known: {known}"
                )
            ranked.append((rank, name, key, value))
    for _, name, key, value in sorted(ranked, reverse=True):  # the best-ranked is written last and wins
        found[name] = (key, value)
    return found


def _kebab(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", camel).lower()


def _suggestion(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(_kebab(name), known, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --- Docs --------------------------------------------------------------------------------------


def knobs_markdown() -> str:
    """The knobs as Markdown tables: the annotations, then config-autoscaler."""
    lines = [
        f"### Revision annotations (`{PREFIX}<name>`, alias `{KNATIVE_PREFIX}<name>`)",
        "",
        "| name | default | unit | what it does |",
        "|---|---|---|---|",
    ]
    for knob in ANNOTATION_KNOBS:
        if knob.setting:
            default = f"`{CONFIG[knob.setting].default}` (config `{knob.setting}`)"
        else:
            default = f"`{knob.default}`" if knob.default else "see doc"
        lines.append(f"| `{knob.name}` | {default} | {knob.unit} | {knob.doc}{' kpa only.' if knob.kpa_only else ''} |")
    lines += ["", "### Platform settings (`config-autoscaler` keys)", "", "| key | default | unit | what it does |"]
    lines.append("|---|---|---|---|")
    lines += [f"| `{knob.name}` | `{knob.default}` | {knob.unit} | {knob.doc} |" for knob in CONFIG_KNOBS]
    return "\n".join(lines) + "\n"
