"""Checks on one resource that its schema alone cannot express (Knative's webhook rules)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from knit.durations import parse_duration
from knit.eventing.filters import InvalidFilter, compile_trigger_filter
from knit.resources.model import PingSource, Resource, Service, Trigger
from knit.serving.traffic import Problem, static_problems


def problems_of(resource: Resource) -> list[Problem]:
    if isinstance(resource, Service):
        return service_problems(resource)
    if isinstance(resource, Trigger):
        return trigger_problems(resource)
    if isinstance(resource, PingSource):
        return ping_source_problems(resource)
    return []


def service_problems(service: Service) -> list[Problem]:
    problems = static_problems(service.spec.traffic)
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
