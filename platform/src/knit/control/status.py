"""A Service's status, Knative-shaped, from one pure function of the serving state.

`service_status` is the only projection: `knit service describe` / `list` / `route describe`
print it (the control API serves it as `status`), `knit render` writes it into the derived
Configuration and Route, and the Kubernetes runtime will write it to `.status`. It holds no
local details: pids and ports are the runtime's instances view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knit.eventing import identity
from knit.serving.state import Condition, ServiceRecord, ServingState

UrlOf = Callable[[str, str, str | None], str | None]  # (service, namespace, tag) -> URL, None when cluster-local


@dataclass(frozen=True)
class TrafficStatus:
    revision_name: str | None  # None while a target follows @latest and nothing is ready yet
    latest_revision: bool
    percent: int
    tag: str | None
    url: str | None  # a tag's own URL

    def to_knative(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"revisionName": self.revision_name, "percent": self.percent}
        if self.latest_revision:
            entry["latestRevision"] = True
        if self.tag:
            entry["tag"] = self.tag
        if self.url:
            entry["url"] = self.url
        return entry


@dataclass(frozen=True)
class ServiceStatus:
    observed_generation: int
    conditions: tuple[Condition, ...]  # ConfigurationsReady, RoutesReady, Ready
    latest_created_revision_name: str
    latest_ready_revision_name: str | None
    url: str | None  # None for a cluster-local Service
    address: str  # where other Services and sources reach it
    audience: str  # what tokens sent to it must name
    traffic: tuple[TrafficStatus, ...]

    def condition(self, kind: str) -> Condition:
        return next(c for c in self.conditions if c.type == kind)

    @property
    def ready(self) -> Condition:
        return self.condition("Ready")

    def to_knative(self) -> dict[str, Any]:
        """As Knative writes a Service's `.status`."""
        return {
            "observedGeneration": self.observed_generation,
            "conditions": [condition_dict(c) for c in self.conditions],
            "latestCreatedRevisionName": self.latest_created_revision_name,
            "latestReadyRevisionName": self.latest_ready_revision_name,
            "url": self.url,
            "address": {"url": self.address, "audience": self.audience},
            "traffic": [target.to_knative() for target in self.traffic],
        }


def service_status(state: ServingState, record: ServiceRecord, url_of: UrlOf, address: str) -> ServiceStatus:
    service = record.service
    latest_ready = state.latest_ready(record)
    url = url_of(service.name, service.namespace, None)
    return ServiceStatus(
        observed_generation=record.generation,
        conditions=tuple(state.conditions(record).values()),
        latest_created_revision_name=record.latest_created.name,
        latest_ready_revision_name=latest_ready.name if latest_ready else None,
        url=url,
        address=address,
        audience=identity.audience_of("Service", service.namespace, service.name),  # Knative: status.address.audience
        traffic=tuple(
            TrafficStatus(
                revision_name=target.revision,
                latest_revision=target.latest,
                percent=target.percent,
                tag=target.tag,
                url=url_of(service.name, service.namespace, target.tag) if target.tag and url else None,
            )
            for target in record.route.targets
        ),
    )


def condition_dict(condition: Condition) -> dict[str, str]:
    return {
        "type": condition.type,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
    }


# --- eventing objects ------------------------------------------------------------------------------

# The conditions each kind reports besides Ready, as Knative's types name them.
_DEPENDENCIES = {
    "KafkaSource": ("SinkProvided",),
    "PingSource": ("SinkProvided",),
    "Trigger": ("BrokerReady", "SubscriberResolved", "DeadLetterSinkResolved"),
}
_RANK = {"False": 0, "Unknown": 1, "True": 2}


def eventing_conditions(kind: str, blocked: Condition | None, running: str | None, address: str) -> list[Condition]:
    """An eventing object's conditions: what it depends on (a False one is `blocked`), whether its
    adapter is deployed (`running` says what it does, None when nothing runs), and Ready, the worst."""
    if kind == "Broker":
        addressable = Condition("Addressable", "True", "", address) if running is not None else Condition(
            "Addressable", "Unknown", "IngressNotRunning", "the Brokers' ingress is not running"
        )  # fmt: skip
        conditions = [addressable]
    elif kind in _DEPENDENCIES:
        conditions = [
            blocked if blocked and blocked.type == kind_of else Condition(kind_of, "True")
            for kind_of in _DEPENDENCIES[kind]
        ]
        if running is not None:
            conditions.append(Condition("Deployed", "True", "", running))
        else:
            message = f"nothing runs until it can: {blocked.message}" if blocked else "not started yet"
            conditions.append(Condition("Deployed", "False", "NotDeployed", message))
    else:  # SinkBinding: its subject's instances get K_SINK when they start
        conditions = []
    worst = min(conditions, key=lambda c: _RANK[c.status], default=Condition("Ready", "True"))
    ready = Condition("Ready", worst.status, worst.reason, worst.message if worst.status != "True" else "")
    return [*conditions, ready]
