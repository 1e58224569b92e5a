"""The control core: applied resources in, a runtime told what to run.

`ControlCore` holds what was applied (Services in a ServingState, everything else by
identity) and the autoscaler's config, and reconciles a runtime with it: Revisions to run
and at what scale, routes for the gateway, eventing adapters to run or stop. It decides;
the runtime (`Runtime`, below) only does: the local runtime with processes, the Kubernetes
runtime with Deployments. It takes the clock as an argument where it decides, so its
tests drive it with a fake runtime and no waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from knit.admission import AUTOSCALER_CONFIG_MAP, Context, autoscaler_data
from knit.autoscaling.knobs import AutoscalerConfig, parse_annotations, parse_config
from knit.autoscaling.metrics import ConcurrencyMeter
from knit.autoscaling.scaler import RevisionScaler
from knit.control.desired import DesiredAdapter, Oidc, binding_for, desired_eventing
from knit.control.status import ServiceStatus, condition_dict, eventing_conditions, service_status
from knit.eventing.ingress import IngressConfig
from knit.gateway.activator import RevisionBackend
from knit.observability import AutoscalerMetrics
from knit.resources.loading import Identity, Manifests
from knit.resources.model import Resource, Service, SinkBinding, TrafficTarget
from knit.serving.revisions import Revision
from knit.serving.state import Condition, RevisionHealth, ServiceRecord, ServingState
from knit.serving.traffic import Route


@dataclass(frozen=True)
class RevisionHooks:
    """What a runtime calls back for a Revision it runs."""

    report: Callable[[RevisionHealth], None]  # its health changed (ready, failed, deploying)
    on_demand: Callable[[], None]  # a request waits and no instance is ready


def metered_backend(revision: Revision, hooks: RevisionHooks) -> tuple[RevisionBackend, ConcurrencyMeter]:
    """The gateway's backend for a Revision (it asks for an instance when a request waits at zero),
    and the meter that counts its requests for the autoscaler (`Runtime.traffic`)."""
    meter = ConcurrencyMeter(time.monotonic())
    backend = RevisionBackend(
        revision.name,
        revision.container_concurrency,
        on_demand=hooks.on_demand,
        on_start=lambda: meter.request_started(time.monotonic()),
        on_finish=lambda: meter.request_finished(time.monotonic()),
    )
    return backend, meter


class Runtime(Protocol):
    """What the control core needs a runtime to do."""

    def address_of(self, kind: str, namespace: str, name: str) -> str: ...
    def url_of(self, service: str, namespace: str, tag: str | None) -> str: ...  # its public URL, if public
    async def prepare_service(self, service: Service, folder: Path) -> None: ...  # on each apply, before its Revisions
    async def run_revision(self, revision: Revision, service: Service, hooks: RevisionHooks) -> None: ...
    async def remove_revision(self, revision: str) -> None: ...  # drain and stop its instances
    def scale(self, revision: str, desired: int) -> None: ...
    # Knative's serverless-service mode: True (proxy) keeps the activator in the request path.
    def serve_through_activator(self, revision: str, through: bool) -> None: ...
    def ready_count(self, revision: str) -> int: ...
    def traffic(self, revision: str, now: float) -> tuple[float, float]: ...  # (concurrency, requests) since last
    def usage(self, revision: str) -> tuple[float, float] | None: ...  # (CPU %, MiB) per instance, for HPA
    def set_route(self, service: Service, route: Route, not_ready: str) -> None: ...
    def remove_route(self, namespace: str, name: str) -> None: ...
    async def ensure_topics(self, topics: list[str]) -> None: ...
    async def run_adapter(self, key: Identity, adapter: DesiredAdapter) -> None: ...  # (re)start its processes
    async def stop_adapter(self, key: Identity) -> None: ...
    async def run_ingress(self, config: IngressConfig | None) -> None: ...  # None: stop it


@dataclass
class _Scaling:
    revision: Revision
    scaler: RevisionScaler
    poked: bool = False  # the autoscaler was told a request waits at zero


@dataclass
class _Eventing:
    adapters: dict[Identity, DesiredAdapter] = field(default_factory=dict)  # running, as last started
    blocked: dict[Identity, Condition] = field(default_factory=dict)  # cannot run now, and why
    ingress: IngressConfig | None = None


class ControlCore:
    def __init__(
        self, runtime: Runtime, kafka_bootstrap: str, oidc: Oidc | None, metrics: AutoscalerMetrics | None = None
    ) -> None:
        self.runtime = runtime
        self.kafka_bootstrap = kafka_bootstrap
        self.oidc = oidc
        self.metrics = metrics
        self.state = ServingState()
        self.applied: dict[Identity, Resource] = {}  # all but Services (self.state holds those)
        self.autoscaler_config: AutoscalerConfig = parse_config({})
        self._autoscaler_data: dict[str, str] = {}
        self.scaling: dict[str, _Scaling] = {}  # by Revision name
        self.suspended: set[tuple[str, str]] = set()
        self._eventing = _Eventing()

    # --- what is applied -----------------------------------------------------------------

    def known(self) -> set[Identity]:
        """(kind, namespace, name) of everything applied, which new manifests may name."""
        return {("Service", namespace, name) for namespace, name in self.state.records} | set(self.applied)

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.known()

    def admission_context(self) -> Context:
        """What admission checks new manifests against: what is applied, and the autoscaler config."""
        return Context(self.known(), dict(self._autoscaler_data))

    def bindings(self) -> list[SinkBinding]:
        return [r for r in self.applied.values() if isinstance(r, SinkBinding)]

    def binding_for(self, revision: Revision) -> SinkBinding | None:
        return binding_for(revision.service, revision.namespace, self.bindings())

    # --- apply, update, delete -----------------------------------------------------------

    async def apply(self, manifests: Manifests) -> list[str]:
        """Apply admitted manifests (knit.admission.load_manifests with `admission_context()`); all
        or nothing (InvalidApply when a Service's change conflicts with what is applied). A line per change."""
        data = autoscaler_data(manifests.resources, self.admission_context())
        config = parse_config(data)
        changes = self.state.plan(manifests.services)
        self.autoscaler_config, self._autoscaler_data = config, data
        for resource in manifests.resources:
            if not isinstance(resource, Service):
                self.applied[(resource.kind, resource.namespace, resource.name)] = resource
        summary = []
        for change in changes:
            await self.runtime.prepare_service(change.service, manifests.folder_of(change.service))
        self.state.commit(changes)
        for change in changes:
            if change.new_revision:
                await self._run_revision(change.new_revision, change.service)
                summary.append(f"{change.service.describe()}: created Revision {change.new_revision.name}")
            else:
                summary.append(f"{change.service.describe()}: unchanged template")
        self.sync_routes()
        applied = {(r.kind, r.namespace, r.name) for r in manifests.resources}
        return summary + await self.reconcile_eventing(applied)

    def update_traffic(self, namespace: str, name: str, traffic: list[TrafficTarget]) -> None:
        self.state.update_traffic(namespace, name, traffic)
        self.sync_routes()

    async def delete(self, identities: list[Identity]) -> list[str]:
        """Delete applied objects, as `kubectl delete` does; all of them or, when one is not
        applied, none (KeyError naming it). A Service takes its Configuration, Revisions and
        Route with it: its instances drain and stop and its hosts answer 404. Whatever named a
        deleted object stays applied and shows not-ready until it is back. A line per change."""
        missing = [f"{kind} {ns}/{name}" for kind, ns, name in identities if not self.exists(kind, ns, name)]
        if missing:
            listing = "`knit service list` and `knit eventing list` show what is"
            raise KeyError(f"not applied: {', '.join(missing)}; {listing}")
        summary = []
        for kind, namespace, name in dict.fromkeys(identities):
            if kind == "Service":
                record = self.state.remove(namespace, name)
                self.runtime.remove_route(namespace, name)
                for revision in record.revisions:
                    self.scaling.pop(revision.name, None)
                await asyncio.gather(*(self.runtime.remove_revision(r.name) for r in record.revisions))
                names = ", ".join(r.name for r in record.revisions)
                summary.append(f"Service {namespace}/{name}: deleted with its Revisions {names}")
            else:
                resource = self.applied.pop((kind, namespace, name))
                if kind == "ConfigMap" and name == AUTOSCALER_CONFIG_MAP:  # Knative's defaults again
                    self.autoscaler_config, self._autoscaler_data = parse_config({}), {}
                summary.append(f"{resource.describe()}: deleted")
        self.sync_routes()
        return summary + await self.reconcile_eventing(set())

    # --- serving ---------------------------------------------------------------------------

    async def _run_revision(self, revision: Revision, service: Service) -> None:
        spec = parse_annotations(revision.annotations, revision.container_concurrency, self.autoscaler_config)
        now = time.monotonic()
        hooks = RevisionHooks(
            report=lambda health: self.report(revision.name, health), on_demand=lambda: self.poke(revision.name)
        )
        await self.runtime.run_revision(revision, service, hooks)
        self.scaling[revision.name] = _Scaling(revision, RevisionScaler(spec, now))
        self.decide(revision.name, now)

    def report(self, revision: str, health: RevisionHealth) -> None:
        """The runtime's word on a Revision's health; routes (and their 503 reasons) follow."""
        if revision not in self.scaling:  # deleted: its last instances reporting as they stop
            return
        self.state.set_health(revision, health)
        self.sync_routes()

    def sync_routes(self) -> None:
        for record in self.state.records.values():
            ready = self.state.conditions(record)["Ready"]
            self.runtime.set_route(record.service, record.route, ready.message if ready.status != "True" else "")

    def status(self, record: ServiceRecord) -> ServiceStatus:
        """The Service's Knative-shaped status (knit.control.status)."""
        service = record.service

        def url_of(name: str, namespace: str, tag: str | None) -> str | None:
            return None if service.cluster_local else self.runtime.url_of(name, namespace, tag)

        return service_status(
            self.state, record, url_of, self.runtime.address_of("Service", service.namespace, service.name)
        )

    # --- autoscaling -----------------------------------------------------------------------

    def poke(self, revision: str) -> None:
        """A request is waiting for a Revision with no ready instance: decide now. The
        autoscaler hears it once per activation, as from Knative's activator; the waiting
        requests themselves are already counted by the runtime's meter."""
        scaling = self.scaling.get(revision)
        if scaling is None or scaling.poked:
            return
        scaling.poked = True
        now = time.monotonic()
        scaling.scaler.poke(now)
        self.decide(revision, now)

    def decide(self, name: str, now: float) -> None:
        scaling = self.scaling[name]
        revision = scaling.revision
        if (revision.namespace, revision.service) in self.suspended:
            self.runtime.scale(name, 0)
            self.runtime.serve_through_activator(name, True)
            return
        ready = self.runtime.ready_count(name)
        if ready:
            scaling.poked = False
        decision = scaling.scaler.decide(now, ready, self.state.routable(name))
        self.runtime.scale(name, decision.desired)
        # As Knative: the activator stays in the path at zero and while the ready instances
        # cannot absorb target-burst-capacity more requests (excess burst capacity below 0).
        self.runtime.serve_through_activator(name, not ready or decision.excess_burst_capacity < 0)
        if self.metrics:
            labels = (revision.service, name)
            self.metrics.desired.labels(*labels).set(decision.desired)
            self.metrics.actual.labels(*labels).set(ready)
            self.metrics.panic.labels(*labels).set(1 if decision.panic else 0)
            self.metrics.stable.labels(*labels).set(decision.stable_value)
            self.metrics.panic_value.labels(*labels).set(decision.panic_value)

    def collect(self, now: float) -> None:
        """Knative's metrics rhythm: each Revision's traffic (and, for HPA, usage) once a second."""
        for name, scaling in list(self.scaling.items()):
            concurrency, requests = self.runtime.traffic(name, now)
            scaling.scaler.record_traffic(now, concurrency, requests)
            if scaling.scaler.spec.autoscaler_class == "hpa":
                usage = self.runtime.usage(name)
                if usage:
                    scaling.scaler.record_usage(now, *usage)

    def tick(self, now: float) -> None:
        """A decision for every Revision."""
        for name in list(self.scaling):
            self.decide(name, now)

    async def autoscale_forever(self) -> None:
        """Metrics every second, a decision every tick (config-autoscaler's tick-interval)."""
        next_tick = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self.collect(now)
            if now >= next_tick:
                next_tick = now + self.autoscaler_config.tick_interval
                self.tick(now)

    def suspend(self, service: str, namespace: str = "default") -> None:
        """For tests: hold a Service at zero, as if its processes were gone."""
        self.suspended.add((namespace, service))
        for name in self._revisions_of(namespace, service):
            self.runtime.scale(name, 0)

    def resume(self, service: str, namespace: str = "default") -> None:
        self.suspended.discard((namespace, service))
        now = time.monotonic()
        for name in self._revisions_of(namespace, service):
            self.decide(name, now)

    def _revisions_of(self, namespace: str, service: str) -> list[str]:
        return [
            n for n, s in self.scaling.items() if (s.revision.namespace, s.revision.service) == (namespace, service)
        ]

    async def wait_settled(self, timeout: float) -> None:
        """Wait until every Service's latest Revision is ready or has failed; TimeoutError, naming
        the Revisions still undecided, when that takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            unsettled = [
                r.latest_created.name
                for r in self.state.records.values()
                if self.state.health.get(r.latest_created.name, RevisionHealth(None)).ready is None
            ]
            if not unsettled:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not ready nor failed after {timeout:g}s: {', '.join(sorted(unsettled))}")
            await asyncio.sleep(0.05)

    # --- eventing ----------------------------------------------------------------------------

    async def reconcile_eventing(self, applied: Iterable[Identity]) -> list[str]:
        """Bring the runtime's adapters in line with what the control core wants for everything
        applied: start new ones, replace changed ones, stop those no longer wanted (deleted, or
        whose sink or Broker is gone). A line for each change, and for each of `applied`."""
        applied = set(applied)
        known = self.known()  # once: desired_eventing asks for every reference
        world = desired_eventing(self.applied.values(), lambda *key: key in known, self.kafka_bootstrap,
                                 self.runtime.address_of, self.oidc)  # fmt: skip
        running = self._eventing
        summary = []
        if world.ingress != running.ingress:
            if world.ingress is not None:
                await self.runtime.ensure_topics(list(world.ingress.brokers.values()))
            await self.runtime.run_ingress(world.ingress)
            running.ingress = world.ingress
            for kind, namespace, name in sorted(key for key in applied if key[0] == "Broker"):
                summary.append(f"Broker {namespace}/{name}: {self.runtime.address_of(kind, namespace, name)}")
        for key in [key for key in running.adapters if key not in world.adapters]:
            adapter = running.adapters.pop(key)
            await self.runtime.stop_adapter(key)
            reason = world.blocked.get(key)
            summary.append(f"{adapter.describe}: stopped" + (f" ({reason.message})" if reason else ""))
        running.blocked = world.blocked
        for key in sorted(set(world.blocked) & applied):
            summary.append(f"{self.applied[key].describe()}: not ready, {world.blocked[key].message}")
        await self.runtime.ensure_topics(sorted({t for adapter in world.adapters.values() for t in adapter.topics}))
        changed = {key: adapter for key, adapter in world.adapters.items() if running.adapters.get(key) != adapter}
        # In parallel: a consumer group takes seconds to join, and they join independently.
        await asyncio.gather(*(self.runtime.run_adapter(key, adapter) for key, adapter in changed.items()))
        running.adapters.update(changed)
        for key, adapter in world.adapters.items():
            if key in changed:
                summary.append(f"{adapter.describe}: {adapter.what}")
            elif key in applied:
                summary.append(f"{adapter.describe}: unchanged")
        return summary

    def eventing_status(self) -> list[dict[str, object]]:
        """Brokers, Triggers, sources and SinkBindings with their conditions (knit.control.status)."""
        rows: list[dict[str, object]] = []
        for key, resource in sorted(self.applied.items()):
            if resource.kind == "ConfigMap":
                continue
            adapter = self._eventing.adapters.get(key)
            if resource.kind == "Broker":
                running = "ingress" if self._eventing.ingress else None
            else:
                running = adapter.what if adapter else None
            blocked = self._eventing.blocked.get(key)
            address = self.runtime.address_of(*key) if resource.kind == "Broker" else ""
            conditions = eventing_conditions(resource.kind, blocked, running, address)
            row: dict[str, object] = {"kind": key[0], "namespace": key[1], "name": key[2]}
            if address:  # a Broker's, as its status.address.url says on Knative
                row["address"] = {"url": address}
            rows.append({**row, "conditions": [condition_dict(c) for c in conditions],
                         "ready": condition_dict(conditions[-1])})  # fmt: skip
        return rows
