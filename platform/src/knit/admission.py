"""Admission: the one place that decides whether resources may be applied (Knative's webhook).

Everything that takes manifests goes through `load_manifests` here: `knit render`, `knit
apply` (the command, with the running knit dev's context, and the control API again), `knit
dev` and the test harness; so each refuses exactly what the others refuse, with the same
messages and field paths. It adds to what reading the files checks (YAML, schema, references,
in `knit.resources.loading`) the rules a schema cannot express: traffic blocks, revision
names, autoscaling annotations against the autoscaler's config (config-autoscaler, from these
manifests or the one already applied), Trigger filters, PingSource schedules and time zones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from knit.autoscaling.knobs import AutoscalerConfig, InvalidKnob, parse_annotations, parse_config
from knit.durations import parse_duration
from knit.eventing.filters import InvalidFilter, compile_trigger_filter
from knit.resources.loading import Identity, Manifests, read_documents, read_manifests
from knit.resources.model import ConfigMap, PingSource, Resource, Service, Trigger
from knit.serving.traffic import Problem, static_problems

AUTOSCALER_CONFIG_MAP = "config-autoscaler"


@dataclass(frozen=True)
class Context:
    """What admission needs to know of the world the manifests go into: the resources already
    applied (which references may name) and the autoscaler's config data in force. Empty for
    `knit render`, the running knit dev's for `knit apply` (GET /admission gives it)."""

    known: Set[Identity] = frozenset()
    autoscaler: dict[str, str] = field(default_factory=dict)


def load_manifests(paths: Iterable[Path | str], context: Context = Context()) -> Manifests:
    """Read the files and admit what they hold: Manifests, or InvalidManifests listing every problem."""
    return read_manifests(paths, context.known, check=lambda resources: problems(resources, context))


def admit_documents(
    documents: Iterable[tuple[str, Any]], context: Context = Context(), *, names_must_exist: bool = True
) -> Manifests:
    """Admit documents already parsed, (where, document) each: from the Kubernetes API, say.
    The controller admits each object alone, with `names_must_exist` False: on a cluster objects
    arrive in any order, and one that names a missing object shows as not ready until it exists."""
    return read_documents(
        ((where, document, None) for where, document in documents),
        context.known if names_must_exist else None,
        check=lambda resources: problems(resources, context),
    )


def autoscaler_data(resources: Sequence[Resource], context: Context = Context()) -> dict[str, str]:
    """config-autoscaler's data once these resources are applied: theirs, else the one in force."""
    given = [r for r in resources if isinstance(r, ConfigMap) and r.name == AUTOSCALER_CONFIG_MAP]
    return dict(given[-1].data if given else context.autoscaler)


def autoscaler_config(resources: Sequence[Resource], context: Context = Context()) -> AutoscalerConfig:
    """The autoscaler's config once these resources are applied (raises InvalidKnob)."""
    return parse_config(autoscaler_data(resources, context))


def problems(resources: Sequence[Resource], context: Context = Context()) -> list[tuple[Resource, str, str]]:
    """(resource, field path, message) for everything wrong with these resources together."""
    found: list[tuple[Resource, str, str]] = []
    config: AutoscalerConfig | None
    try:
        config = autoscaler_config(resources, context)
    except InvalidKnob as error:
        config_map = next(r for r in resources if isinstance(r, ConfigMap) and r.name == AUTOSCALER_CONFIG_MAP)
        found.append((config_map, f"data.{error.key}", error.message))
        config = None
    for resource in resources:
        found.extend((resource, path, message) for path, message in problems_of(resource, config))
    return found


def problems_of(resource: Resource, config: AutoscalerConfig | None = None) -> list[Problem]:
    """What is wrong with one resource; a Service's annotations are checked when `config` is known."""
    if isinstance(resource, Service):
        return service_problems(resource, config)
    if isinstance(resource, Trigger):
        return trigger_problems(resource)
    if isinstance(resource, PingSource):
        return ping_source_problems(resource)
    return []


def service_problems(service: Service, config: AutoscalerConfig | None = None) -> list[Problem]:
    problems = static_problems(service.spec.traffic)
    template = service.spec.template
    if config is not None:
        try:
            parse_annotations(template.metadata.annotations, template.spec.container_concurrency, config)
        except InvalidKnob as error:
            problems.append(("spec.template.metadata.annotations", str(error)))
    name = service.spec.template.metadata.name
    if name and not name.startswith(f"{service.name}-"):
        message = f"revision name {name!r} must start with the Service name: {service.name}-…"
        problems.append(("spec.template.metadata.name", message))
    return problems


def trigger_problems(trigger: Trigger) -> list[Problem]:
    try:
        compile_trigger_filter(None, trigger.spec.filters)
    except InvalidFilter as error:
        return [(error.path, str(error).removeprefix(f"{error.path}: "))]
    return []


def schedule_problem(schedule: str) -> str | None:
    """Why a PingSource schedule cannot be read, or None: a 5-field cron, a descriptor such
    as @hourly, or `@every <duration>` (at least 1s), as Knative's PingSource takes them."""
    if schedule.startswith("@every "):
        try:
            seconds = parse_duration(schedule.removeprefix("@every "))
        except ValueError as error:
            return f"{schedule!r}: the interval {error}"
        return None if seconds >= 1 else f"{schedule!r}: the interval must be at least 1s"
    fields = len(schedule.split())
    if not croniter.is_valid(schedule) or (fields != 5 and not schedule.startswith("@")):
        return f"must be a 5-field cron expression such as '*/5 * * * *', @hourly or '@every 30s'; got {schedule!r}"
    return None


def ping_source_problems(source: PingSource) -> list[Problem]:
    problems = []
    if message := schedule_problem(source.spec.schedule):
        problems.append(("spec.schedule", message))
    if source.spec.timezone:
        try:
            ZoneInfo(source.spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = source.spec.timezone
            problems.append(("spec.timezone", f"must be an IANA time zone such as 'Europe/Paris'; got {zone!r}"))
    return problems
