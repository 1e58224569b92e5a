"""The local runtime: Knative Serving and KafkaSources on this machine.

It holds the serving state (Services, Revisions, Routes), runs each Revision's instances
as processes (RevisionRunner), keeps the gateway's tables in step, asks each Revision's
autoscaler for a desired scale every tick, and runs a dispatcher process per KafkaSource.
Everything here is I/O and bookkeeping; the decisions live in `serving` and `autoscaling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from knit.admission import AUTOSCALER_CONFIG_MAP, Context, autoscaler_data
from knit.autoscaling.knobs import AutoscalerConfig, parse_annotations, parse_config
from knit.autoscaling.metrics import ConcurrencyMeter
from knit.autoscaling.scaler import RevisionScaler
from knit.control.desired import (
    IDENTITY_VARIABLES,
    INGRESS,
    AdapterProcess,
    DesiredAdapter,
    Oidc,
    binding_for,
    desired_eventing,
)
from knit.control.status import ServiceStatus, service_status
from knit.eventing.ingress import IngressConfig
from knit.gateway.activator import RevisionBackend
from knit.gateway.limits import GatewayLimits
from knit.gateway.proxy import Gateway
from knit.gateway.routing import RouteTable
from knit.host import HOST, free_port
from knit.kafka.admin import ensure_topics
from knit.observability import Metrics
from knit.resources.loading import Identity, Manifests
from knit.resources.model import Resource, Service, SinkBinding, TrafficTarget
from knit.runtimes.local.adapters import Adapter
from knit.runtimes.local.forking import ForkServer, fork_entry, preloaded_modules
from knit.runtimes.local.instances import RevisionRunner
from knit.runtimes.local.oidc import CHECK_INTERVAL, TokenFiles
from knit.runtimes.local.plan import ProcessPlan, adapter_plan, instance_plan
from knit.runtimes.local.processes import LogSink, ProcessFailed
from knit.serving.revisions import Revision
from knit.serving.state import Condition, RevisionHealth, ServiceRecord, ServingState

# Set by the platform for each instance; a value left in the user's shell must not leak in.
_PLATFORM_VARIABLES = (
    "K_SINK", "K_CE_OVERRIDES", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "PORT", *IDENTITY_VARIABLES,
)  # fmt: skip


def base_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment every process inherits: the user's, with this Python's bin folder
    first on PATH so `gunicorn` in a manifest is the one installed next to knit."""
    env = {k: v for k, v in environ.items() if k not in _PLATFORM_VARIABLES}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(frozen=True)
class Options:
    port: int = 8080  # the gateway's public port; 0 picks a free one
    domain: str = "localhost"
    ready_timeout: float = 60.0  # seconds an instance has to pass its readiness check
    activation_timeout: float = 60.0  # seconds a request waits for an instance of its Revision
    gateway_limits: GatewayLimits = dataclasses.field(default_factory=GatewayLimits)  # what a client can make it hold


@dataclass
class _RevisionParts:
    revision: Revision
    runner: RevisionRunner
    backend: RevisionBackend
    scaler: RevisionScaler
    meter: ConcurrencyMeter
    usage: UsageSampler
    poked: bool = False  # the autoscaler was told a request waits at zero


class LocalRuntime:
    def __init__(
        self, kafka_bootstrap: str, logs: LogSink, options: Options = Options(), state_dir: Path | None = None
    ) -> None:
        """`state_dir` (knit dev: `.knit`) holds the token issuer's files under `oidc/`;
        without one they go to a temporary folder removed at stop."""
        self.kafka_bootstrap = kafka_bootstrap
        self.logs = logs
        self.options = options
        self.state = ServingState()
        self.metrics = Metrics()
        self.routes = RouteTable(options.domain)
        self.backends: dict[str, RevisionBackend] = {}
        self.revisions: dict[str, _RevisionParts] = {}
        self.autoscaler_config: AutoscalerConfig = parse_config({})
        self._autoscaler_data: dict[str, str] = {}
        self.gateway = Gateway(
            self.routes,
            self.backends,
            self.metrics.gateway,
            activation_timeout=lambda _: options.activation_timeout,
            request_timeout=lambda revision: float(self.revisions[revision].revision.template.spec.timeout_seconds),
            limits=options.gateway_limits,
        )
        self.port = 0
        self._service_ports: dict[tuple[str, str], int] = {}
        self._folders: dict[tuple[str, str], Path] = {}
        self._applied: dict[Identity, Resource] = {}  # all but Services (self.state holds those)
        self._adapters: dict[Identity, tuple[DesiredAdapter, list[Adapter]]] = {}
        self._blocked: dict[Identity, Condition] = {}  # eventing resources that cannot run now, and why
        self._ingress: Adapter | None = None
        self._ingress_config: IngressConfig | None = None  # what the running ingress was started with
        self._ingress_port = free_port()
        self._suspended: set[tuple[str, str]] = set()
        self._base_env = base_environment()
        self._loop_task: asyncio.Task[None] | None = None
        # Sender identity: a new key pair for every runtime, token files kept fresh.
        oidc_folder = state_dir / "oidc" if state_dir else Path(tempfile.mkdtemp(prefix="knit-oidc-"))
        self._oidc_scratch = None if state_dir else oidc_folder  # removed at stop
        self.tokens = TokenFiles(oidc_folder)
        self.oidc = Oidc(self.tokens.issuer.name, str(self.tokens.jwks_path), self.tokens.token_file)
        self._renew_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.gateway.start_session()
        self.port = await self.gateway.listen(HOST, self.options.port, self.gateway.by_host)
        self._loop_task = asyncio.create_task(self._autoscale_forever())
        self._renew_task = asyncio.create_task(self._renew_tokens_forever())

    async def stop(self) -> None:
        for task in (self._loop_task, self._renew_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(p.stop() for _, processes in self._adapters.values() for p in processes))
        if self._ingress:
            await self._ingress.stop()
        await asyncio.gather(*(parts.runner.stop() for parts in self.revisions.values()))
        await self.gateway.close()
        self.tokens.remove()
        if self._oidc_scratch:
            shutil.rmtree(self._oidc_scratch, ignore_errors=True)

    async def _renew_tokens_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self.tokens.renew()

    # --- addresses ---------------------------------------------------------------------

    def url_of(self, service: str, namespace: str = "default", tag: str | None = None) -> str:
        """The public URL (browsers and curl resolve *.localhost to 127.0.0.1)."""
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{self.routes.host_of(service, namespace, tag)}{port}"

    def address_of(self, kind: str, namespace: str, name: str) -> str:
        """Where events for an addressable object go: a Service's cluster-local address
        (through the gateway), or a Broker's path on the ingress."""
        if kind == "Broker":
            return f"http://{HOST}:{self._ingress_port}/{namespace}/{name}"
        return f"http://{HOST}:{self._service_ports[(namespace, name)]}"

    def known(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of everything applied so far, which new manifests may name."""
        services = {("Service", namespace, name) for namespace, name in self.state.records}
        return services | set(self._applied)

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.known()

    def public_urls(self) -> dict[str, str]:
        return {
            record.service.name: self.url_of(record.service.name, record.service.namespace) + "/"
            for record in self.state.records.values()
            if not record.service.cluster_local
        }

    # --- applying manifests --------------------------------------------------------------

    def admission_context(self) -> Context:
        """What admission checks new manifests against: what is applied, and the autoscaler config."""
        return Context(self.known(), dict(self._autoscaler_data))

    async def apply(self, manifests: Manifests) -> list[str]:
        """Apply admitted manifests (knit.admission.load_manifests with `admission_context()`):
        Services, SinkBindings, sources, Brokers, Triggers and the autoscaler ConfigMap; all or
        nothing. Returns a line per change."""
        data = autoscaler_data(manifests.resources, self.admission_context())
        config = parse_config(data)
        changes = self.state.plan(manifests.services)
        self.autoscaler_config, self._autoscaler_data = config, data
        for resource in manifests.resources:
            if not isinstance(resource, Service):
                self._applied[(resource.kind, resource.namespace, resource.name)] = resource
        summary = []
        for change in changes:
            key = (change.service.namespace, change.service.name)
            self._folders[key] = manifests.folder_of(change.service)
            if key not in self._service_ports:
                self._service_ports[key] = await self.gateway.listen(HOST, 0, self._cluster_local_route(*key))
        self.state.commit(changes)
        for change in changes:
            if change.new_revision:
                await self._create_revision(change.new_revision, change.service)
                summary.append(f"{change.service.describe()}: created Revision {change.new_revision.name}")
            else:
                summary.append(f"{change.service.describe()}: unchanged template")
        self._sync_routes()
        applied = {(r.kind, r.namespace, r.name) for r in manifests.resources}
        summary += await self._reconcile_eventing(applied)
        return summary

    def update_traffic(self, namespace: str, name: str, traffic: list[TrafficTarget]) -> None:
        self.state.update_traffic(namespace, name, traffic)
        self._sync_routes()

    def _cluster_local_route(self, namespace: str, service: str) -> Any:
        return lambda _request: self.routes.service_route(service, namespace)

    async def _create_revision(self, revision: Revision, service: Service) -> None:
        key = (service.namespace, service.name)
        spec = parse_annotations(revision.annotations, revision.container_concurrency, self.autoscaler_config)
        now = time.monotonic()
        scaler = RevisionScaler(spec, now)
        meter = ConcurrencyMeter(now)
        backend = RevisionBackend(
            revision.name,
            revision.container_concurrency,
            on_demand=lambda: self._poke(revision.name),
            on_start=lambda: meter.request_started(time.monotonic()),
            on_finish=lambda: meter.request_finished(time.monotonic()),
        )
        folder = self._folders[key]

        def plan_for(name: str, port: int) -> ProcessPlan:
            binding = binding_for(service.name, service.namespace, self._bindings())
            return instance_plan(
                name, revision, folder, port, self.kafka_bootstrap, binding, self.address_of, self._base_env, self.oidc
            )

        fork_server = await self._fork_server(revision, plan_for)
        runner = RevisionRunner(
            revision,
            plan_for,
            backend,
            self.logs,
            report=lambda health: self._report(revision.name, health),
            ready_timeout=self.options.ready_timeout,
            fork_server=fork_server,
        )
        self.backends[revision.name] = backend
        self.metrics.gateway.in_flight.labels(service.name, revision.name).set_function(lambda: backend.in_flight)
        self.revisions[revision.name] = _RevisionParts(revision, runner, backend, scaler, meter, UsageSampler())
        self._decide(revision.name, now)

    async def _fork_server(self, revision: Revision, plan_for: Any) -> ForkServer | None:
        """A fork server for a Revision that names modules to preload, when its command allows."""
        modules = preloaded_modules(revision.annotations)
        if not modules:
            return None
        template = plan_for(f"{revision.name}/template", 0)
        entry = fork_entry(template.argv, template.env)
        if entry is None:
            self.logs.line(revision.name, "local.knit.dev/preload ignored: the command is not a Python entry point")
            return None
        env = {k: v for k, v in template.env.items() if k != "PORT"}
        server = ForkServer(f"{revision.name}/template", entry[0], modules, env, template.cwd)
        try:
            await server.start()
        except ProcessFailed as error:
            self.logs.line(revision.name, f"{error}; instances start as fresh processes")
            return None
        return server

    def _report(self, revision: str, health: RevisionHealth) -> None:
        if revision not in self.revisions:  # deleted: its last instances reporting as they stop
            return
        self.state.set_health(revision, health)
        self._sync_routes()  # routes, and the reasons their 503s give

    def _sync_routes(self) -> None:
        for record in self.state.records.values():
            service = record.service
            ready = self.state.conditions(record)["Ready"]
            not_ready = ready.message if ready.status != "True" else ""
            self.routes.set_route(
                service.name, service.namespace, record.route.split, record.route.tags, service.cluster_local, not_ready
            )

    # --- deleting --------------------------------------------------------------------------

    async def delete(self, identities: list[Identity]) -> list[str]:
        """Delete applied objects, as `kubectl delete` does; all of them or, when one is not
        applied, none (KeyError naming it). A Service takes its Configuration, Revisions and
        Route with it: its instances drain and stop and its hosts answer 404. Whatever named a
        deleted object stays applied and shows not-ready until it is back. A line per change."""
        missing = [
            f"{kind} {namespace}/{name}"
            for kind, namespace, name in identities
            if not self.exists(kind, namespace, name)
        ]
        if missing:
            raise KeyError(
                f"not applied: {', '.join(missing)}; `knit service list` and `knit eventing list` show what is"
            )
        summary = []
        for kind, namespace, name in dict.fromkeys(identities):
            if kind == "Service":
                revisions = await self._delete_service(namespace, name)
                summary.append(f"Service {namespace}/{name}: deleted with its Revisions {', '.join(revisions)}")
            else:
                resource = self._applied.pop((kind, namespace, name))
                if kind == "ConfigMap" and name == AUTOSCALER_CONFIG_MAP:  # Knative's defaults again
                    self.autoscaler_config, self._autoscaler_data = parse_config({}), {}
                summary.append(f"{resource.describe()}: deleted")
        self._sync_routes()
        return summary + await self._reconcile_eventing(set())

    async def _delete_service(self, namespace: str, name: str) -> list[str]:
        """Take a Service off the gateway and stop its Revisions' instances (they drain). Its
        cluster-local port stays reserved, so a re-applied Service has the same address."""
        record = self.state.remove(namespace, name)
        self.routes.remove_service(name, namespace)
        stopping = []
        for revision in record.revisions:
            parts = self.revisions.pop(revision.name, None)
            self.backends.pop(revision.name, None)
            self.metrics.forget_revision(name, revision.name)
            if parts:
                stopping.append(parts.runner.stop())
        await asyncio.gather(*stopping)
        return [revision.name for revision in record.revisions]

    # --- eventing: Brokers, Triggers, KafkaSources, PingSources ---------------------------

    def _bindings(self) -> list[SinkBinding]:
        return [r for r in self._applied.values() if isinstance(r, SinkBinding)]

    async def _reconcile_eventing(self, applied: set[Identity]) -> list[str]:
        """Bring the running adapters in line with what the control core wants for everything
        applied: start new ones, replace changed ones, stop those no longer wanted (deleted, or
        whose sink or Broker is gone). A line for each change, and for each of `applied`."""
        world = desired_eventing(self._applied.values(), self.exists, self.kafka_bootstrap, self.address_of, self.oidc)
        summary = []
        if world.ingress != self._ingress_config:
            await self._restart_ingress(world.ingress)
            for kind, namespace, name in sorted(key for key in applied if key[0] == "Broker"):
                summary.append(f"Broker {namespace}/{name}: {self.address_of(kind, namespace, name)}")
        gone = [key for key in self._adapters if key not in world.adapters]
        for key in gone:
            desired, processes = self._adapters.pop(key)
            await asyncio.gather(*(process.stop() for process in processes))
            reason = world.blocked.get(key)
            summary.append(f"{desired.describe}: stopped" + (f" ({reason.message})" if reason else ""))
        self._blocked = world.blocked
        for key in sorted(set(world.blocked) & applied):
            summary.append(f"{self._applied[key].describe()}: not ready, {world.blocked[key].message}")
        topics = sorted({topic for adapter in world.adapters.values() for topic in adapter.topics})
        await asyncio.get_running_loop().run_in_executor(None, ensure_topics, self.kafka_bootstrap, topics)
        # In parallel: a consumer group takes seconds to join, and they join independently.
        runs = [self._run_adapter(key, desired, key in applied) for key, desired in world.adapters.items()]
        return summary + [line for line in await asyncio.gather(*runs) if line]

    async def _restart_ingress(self, config: IngressConfig | None) -> None:
        """One ingress process serves every Broker; it restarts when the Brokers change."""
        if config is not None:
            topics = list(config.brokers.values())
            await asyncio.get_running_loop().run_in_executor(None, ensure_topics, self.kafka_bootstrap, topics)
        if self._ingress:
            await self._ingress.stop()
            self._ingress = None
        self._ingress_config = config
        if config is not None:
            plan = self._adapter_plan(AdapterProcess.of("broker-ingress", INGRESS, config), self._ingress_port)
            self._ingress = await self._start_adapter(plan)

    def _adapter_plan(self, process: AdapterProcess, port: int | None = None) -> ProcessPlan:
        return adapter_plan(
            process.name, process.module, process.config_env, process.config, port or free_port(), self._base_env
        )

    async def _run_adapter(self, key: Identity, desired: DesiredAdapter, report: bool) -> str | None:
        current = self._adapters.get(key)
        if current and current[0] == desired:
            return f"{desired.describe}: unchanged" if report else None
        if current:
            await asyncio.gather(*(process.stop() for process in current[1]))
        processes = await asyncio.gather(*(self._start_adapter(self._adapter_plan(p)) for p in desired.processes))
        self._adapters[key] = (desired, list(processes))
        return f"{desired.describe}: {desired.what}"

    async def _start_adapter(self, plan: ProcessPlan) -> Adapter:
        adapter = Adapter(plan, self.logs, self.options.ready_timeout)
        await adapter.start()
        return adapter

    # --- autoscaling -----------------------------------------------------------------------

    def _poke(self, revision: str) -> None:
        """A request is waiting for a Revision with no ready instance: decide now. The
        autoscaler hears it once per activation, as from Knative's activator; the waiting
        requests themselves are already counted by the meter."""
        parts = self.revisions[revision]
        if parts.poked:
            return
        parts.poked = True
        now = time.monotonic()
        parts.scaler.poke(now)
        self._decide(revision, now)

    def _decide(self, name: str, now: float) -> None:
        parts = self.revisions[name]
        runner = parts.runner
        key = (parts.revision.namespace, parts.revision.service)
        if key in self._suspended:
            runner.scale_to(0)
            return
        if runner.ready_count:
            parts.poked = False
        decision = parts.scaler.decide(now, runner.ready_count, self.state.routable(name))
        runner.scale_to(decision.desired)
        labels = (parts.revision.service, name)
        self.metrics.autoscaler.desired.labels(*labels).set(decision.desired)
        self.metrics.autoscaler.actual.labels(*labels).set(runner.ready_count)
        self.metrics.autoscaler.panic.labels(*labels).set(1 if decision.panic else 0)
        self.metrics.autoscaler.stable.labels(*labels).set(decision.stable_value)
        self.metrics.autoscaler.panic_value.labels(*labels).set(decision.panic_value)

    async def _autoscale_forever(self) -> None:
        """Knative's rhythm: metrics every second, a decision every tick."""
        next_tick = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for parts in list(self.revisions.values()):
                concurrency, requests = parts.meter.collect(now)
                parts.scaler.record_traffic(now, concurrency, requests)
                if parts.scaler.spec.autoscaler_class == "hpa":
                    usage = parts.usage.sample([i.process.pid for i in parts.runner.instances if i.ready])
                    if usage:
                        parts.scaler.record_usage(now, *usage)
            if now >= next_tick:
                next_tick = now + self.autoscaler_config.tick_interval
                for name in list(self.revisions):
                    self._decide(name, now)

    # --- status, for the control API ------------------------------------------------------

    def describe(self, namespace: str, name: str) -> dict[str, Any]:
        """A Service as `knit service describe` shows it: its status (URLs, conditions, traffic) and
        its Revisions as this runtime runs them (scale, health, and each instance's pid and address)."""
        record = self.state.record(namespace, name)
        route = record.route
        latest_ready = self.state.latest_ready(record)
        revisions = []
        for revision in reversed(record.revisions):
            health = self.state.health.get(revision.name, RevisionHealth(None))
            parts = self.revisions.get(revision.name)
            revisions.append(
                {
                    "name": revision.name,
                    "generation": revision.generation,
                    "ready": health.ready,
                    "reason": health.reason,
                    "message": health.message,
                    "percent": route.split.get(revision.name, 0),
                    "tags": sorted(tag for tag, target in route.tags.items() if target == revision.name),
                    "latest": latest_ready is not None and revision.name == latest_ready.name,
                    "actual_scale": parts.runner.ready_count if parts else 0,
                    "desired_scale": parts.runner.desired if parts else 0,
                    "container_concurrency": revision.container_concurrency,
                    "instances": [
                        {
                            "name": i.name,
                            "address": f"http://{HOST}:{i.plan.port}",
                            "pid": i.process.pid,
                            "ready": i.ready,
                            "leaving": i.leaving,
                            "in_flight": i.endpoint.in_flight if i.endpoint else 0,
                        }
                        for i in (parts.runner.instances if parts else [])
                    ],
                }
            )
        return {
            "name": name,
            "namespace": namespace,
            "status": self.status(record).to_knative(),
            "revisions": revisions,
        }

    def status(self, record: ServiceRecord) -> ServiceStatus:
        """The Service's Knative-shaped status (knit.control.status): what `knit service describe` prints."""

        def url_of(service: str, namespace: str, tag: str | None) -> str | None:
            return None if record.service.cluster_local else self.url_of(service, namespace, tag)

        service = record.service
        return service_status(self.state, record, url_of, self.address_of("Service", service.namespace, service.name))

    def adapters(self) -> list[dict[str, Any]]:
        """The platform's own processes (dispatchers, ingress, ping) as `knit dev` runs them."""
        running = [adapter for _, adapters in self._adapters.values() for adapter in adapters]
        if self._ingress:
            running.append(self._ingress)
        return [{"name": a.plan.name, "pid": a.pid, "port": a.plan.port, "restarts": a.restarts} for a in running]

    def eventing(self) -> list[dict[str, Any]]:
        """Brokers, Triggers and sources with their Ready condition, as `knit eventing list` shows them."""
        rows = []
        for key, resource in sorted(self._applied.items()):
            if resource.kind not in ("Broker", "Trigger", "KafkaSource", "PingSource", "SinkBinding"):
                continue
            blocked = self._blocked.get(key)
            running = self._adapters.get(key)
            if blocked:
                ready = _condition_dict(blocked)
            elif resource.kind == "Broker":
                ready = _condition_dict(Condition("Ready", "True" if self._ingress else "Unknown"))
                ready["message"] = self.address_of(*key)
            else:
                ready = _condition_dict(Condition("Ready", "True"))
                ready["message"] = running[0].what if running else ""
            rows.append({"kind": key[0], "namespace": key[1], "name": key[2], "ready": ready})
        return rows

    def services(self) -> list[dict[str, Any]]:
        return [self.describe(ns, name) for ns, name in sorted(self.state.records)]

    # --- for tests: hold a Service at zero, as if its processes were gone --------------------

    def suspend(self, service: str, namespace: str = "default") -> None:
        self._suspended.add((namespace, service))
        for parts in self.revisions.values():
            if (parts.revision.namespace, parts.revision.service) == (namespace, service):
                parts.runner.scale_to(0)

    def resume(self, service: str, namespace: str = "default") -> None:
        self._suspended.discard((namespace, service))
        now = time.monotonic()
        for name, parts in self.revisions.items():
            if (parts.revision.namespace, parts.revision.service) == (namespace, service):
                self._decide(name, now)

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


class UsageSampler:
    """CPU and memory of a Revision's instances, for the HPA class: the average per instance,
    each instance counted with its children (gunicorn's workers). CPU is in percent of one
    core since the previous sample, so the same psutil objects are kept between samples."""

    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}

    def _tree(self, pid: int) -> list[psutil.Process]:
        root = self._processes.setdefault(pid, psutil.Process(pid))
        return [root, *(self._processes.setdefault(c.pid, c) for c in root.children(recursive=True))]

    def sample(self, pids: list[int | None]) -> tuple[float, float] | None:
        """(CPU %, resident MiB) averaged over the instances, or None when there is none."""
        samples, seen = [], set()
        for pid in filter(None, pids):
            with contextlib.suppress(psutil.Error):
                tree = self._tree(pid)
                seen.update(p.pid for p in tree)
                samples.append((sum(p.cpu_percent(None) for p in tree), sum(p.memory_info().rss for p in tree) / 2**20))
        self._processes = {pid: p for pid, p in self._processes.items() if pid in seen}
        if not samples:
            return None
        return sum(s[0] for s in samples) / len(samples), sum(s[1] for s in samples) / len(samples)


def _condition_dict(condition: Condition) -> dict[str, str]:
    return dataclasses.asdict(condition)
