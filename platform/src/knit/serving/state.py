"""The serving control plane's state: applied Services, their Revisions and Routes, and
the conditions a user sees. Pure: the runtime reports which Revisions are ready, and
reads back what should run and where requests go.

Applying is all or nothing: `plan` checks every Service against the current state and
returns the changes, or raises InvalidApply with every problem; `commit` records them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from knit.resources.model import Service, TrafficTarget
from knit.serving.revisions import Revision, RevisionConflict, revision_for
from knit.serving.traffic import InvalidTraffic, Route, resolve

Key = tuple[str, str]  # (namespace, name)


class InvalidApply(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True", "False" or "Unknown", as Kubernetes writes them
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class RevisionHealth:
    """What the runtime knows of a Revision: ready (True), failed (False) or starting (None)."""

    ready: bool | None
    reason: str = ""
    message: str = ""


@dataclass
class ServiceRecord:
    service: Service
    revisions: list[Revision] = field(default_factory=list)
    generation: int = 1
    route: Route = field(default_factory=lambda: Route(()))

    @property
    def latest_created(self) -> Revision:
        return self.revisions[-1]


@dataclass(frozen=True)
class Change:
    service: Service
    new_revision: Revision | None


class ServingState:
    def __init__(self) -> None:
        self.records: dict[Key, ServiceRecord] = {}
        self.health: dict[str, RevisionHealth] = {}

    # --- applying ------------------------------------------------------------------

    def plan(self, services: Iterable[Service]) -> list[Change]:
        changes, problems = [], []
        for service in services:
            record = self.records.get((service.namespace, service.name))
            known = list(record.revisions) if record else []
            try:
                new = revision_for(service, known)
            except RevisionConflict as error:
                problems.append(f"{service.describe()}: {error.path}: {error}")
                continue
            names = [r.name for r in known] + ([new.name] if new else [])
            try:
                resolve(service.spec.traffic, names, latest_ready=None)
            except InvalidTraffic as error:
                problems.extend(f"{service.describe()}: {path}: {message}" for path, message in error.problems)
                continue
            changes.append(Change(service, new))
        if problems:
            raise InvalidApply(problems)
        return changes

    def commit(self, changes: Iterable[Change]) -> None:
        for change in changes:
            key = (change.service.namespace, change.service.name)
            record = self.records.get(key)
            if record is None:
                record = self.records[key] = ServiceRecord(change.service)
            elif record.service != change.service:
                record.service = change.service
                record.generation += 1
            if change.new_revision:
                record.revisions.append(change.new_revision)
                self.health[change.new_revision.name] = RevisionHealth(None, "Deploying")
            self._route(record)

    def apply(self, services: Iterable[Service]) -> list[Change]:
        changes = self.plan(services)
        self.commit(changes)
        return changes

    def remove(self, namespace: str, name: str) -> ServiceRecord:
        """Forget a Service with its Configuration, Revisions and Route (KeyError if unknown)."""
        record = self.record(namespace, name)
        del self.records[(namespace, name)]
        for revision in record.revisions:
            self.health.pop(revision.name, None)
        return record

    def update_traffic(self, namespace: str, name: str, traffic: list[TrafficTarget]) -> None:
        """Replace a Service's traffic block, as `kn service update --traffic` does."""
        record = self.record(namespace, name)
        spec = record.service.spec.model_copy(update={"traffic": traffic})
        self.apply([record.service.model_copy(update={"spec": spec})])

    # --- what the runtime reports and reads -----------------------------------------

    def set_health(self, revision: str, health: RevisionHealth) -> None:
        """Record a Revision's health; Routes that follow the latest ready Revision follow it."""
        self.health[revision] = health
        for record in self.records.values():
            if any(r.name == revision for r in record.revisions):
                self._route(record)

    def record(self, namespace: str, name: str) -> ServiceRecord:
        try:
            return self.records[(namespace, name)]
        except KeyError:
            known = ", ".join(f"{ns}/{n}" for ns, n in sorted(self.records)) or "none"
            raise KeyError(f"no Service {namespace}/{name}; known: {known}") from None

    def revisions(self) -> list[Revision]:
        return [revision for record in self.records.values() for revision in record.revisions]

    def routable(self, revision: str) -> bool:
        return any(revision in record.route.revisions for record in self.records.values())

    def latest_ready(self, record: ServiceRecord) -> Revision | None:
        ready = [r for r in record.revisions if self.health.get(r.name, RevisionHealth(None)).ready]
        return ready[-1] if ready else None

    def _route(self, record: ServiceRecord) -> None:
        latest = self.latest_ready(record)
        names = [r.name for r in record.revisions]
        record.route = resolve(record.service.spec.traffic, names, latest.name if latest else None)

    # --- conditions ----------------------------------------------------------------

    def conditions(self, record: ServiceRecord) -> dict[str, Condition]:
        """Knative's Service conditions: ConfigurationsReady, RoutesReady and Ready."""
        latest = record.latest_created
        health = self.health.get(latest.name, RevisionHealth(None))
        if health.ready:
            configuration = Condition("ConfigurationsReady", "True")
        elif health.ready is False:
            message = f"Revision {latest.name!r} failed: {health.message}"
            configuration = Condition("ConfigurationsReady", "False", health.reason or "RevisionFailed", message)
        else:
            message = f"Revision {latest.name!r} is not ready yet"
            configuration = Condition("ConfigurationsReady", "Unknown", health.reason or "Deploying", message)
        routes = self._route_condition(record)
        worst = min((configuration, routes), key=lambda c: {"False": 0, "Unknown": 1, "True": 2}[c.status])
        ready = Condition("Ready", worst.status, worst.reason, worst.message)
        return {c.type: c for c in (configuration, routes, ready)}

    def _route_condition(self, record: ServiceRecord) -> Condition:
        missing = [t for t in record.route.targets if t.revision is None]
        if missing:
            return Condition("RoutesReady", "Unknown", "RevisionMissing", "no ready Revision to send traffic to yet")
        for name in sorted(record.route.revisions):
            health = self.health.get(name, RevisionHealth(None))
            if health.ready is False:
                message = f"Revision {name!r} receives traffic but failed: {health.message}"
                return Condition("RoutesReady", "False", health.reason or "RevisionFailed", message)
            if health.ready is None:
                return Condition("RoutesReady", "Unknown", "Deploying", f"Revision {name!r} is not ready yet")
        return Condition("RoutesReady", "True")


def revisions_by_name(records: Mapping[Key, ServiceRecord]) -> dict[str, Revision]:
    return {r.name: r for record in records.values() for r in record.revisions}
