"""The local runtime: the control core's decisions carried out on this machine.

`LocalRuntime` is a `knit.control.core.Runtime`: it runs each Revision's instances as
processes (RevisionRunner, forked from a template when asked), keeps the gateway's route
tables and backends, measures traffic and CPU/memory for the autoscaler, and runs the
eventing adapters (dispatchers, ping, the Brokers' ingress) as processes. Everything here is
local: processes, ports, fork servers, usage sampling, the token issuer. What to run, at what
scale, and where requests go is decided by the ControlCore it carries (`self.core`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from knit.admission import Context
from knit.autoscaling.knobs import AutoscalerConfig
from knit.autoscaling.metrics import ConcurrencyMeter
from knit.control.core import ControlCore, RevisionHooks, metered_backend
from knit.control.desired import IDENTITY_VARIABLES, INGRESS, AdapterProcess, DesiredAdapter, Oidc
from knit.eventing.ingress import IngressConfig
from knit.gateway import haproxy
from knit.gateway.activator import Endpoint, RevisionBackend
from knit.gateway.limits import GatewayLimits
from knit.gateway.proxy import Gateway
from knit.gateway.routing import RouteEntry, RouteTable, Split
from knit.host import HOST, free_port
from knit.kafka.admin import ensure_topics
from knit.observability import Metrics
from knit.resources.loading import Identity, Manifests
from knit.resources.model import Service, TrafficTarget
from knit.runtimes.local.adapters import Adapter
from knit.runtimes.local.data_plane import HaproxyDataPlane
from knit.runtimes.local.forking import ForkServer, fork_entry, preloaded_modules
from knit.runtimes.local.instances import Backend, RevisionRunner
from knit.runtimes.local.oidc import CHECK_INTERVAL, TokenFiles
from knit.runtimes.local.plan import ProcessPlan, adapter_plan, instance_plan
from knit.runtimes.local.processes import LogSink, ProcessFailed
from knit.serving.revisions import Revision
from knit.serving.state import RevisionHealth, ServingState
from knit.serving.traffic import Route

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
    data_plane: str = "python"  # one of DATA_PLANES: who carries requests to ready instances


DATA_PLANES = ("python", "haproxy")  # python: the aiohttp gateway alone; haproxy: HAProxy + the activator
# knit's own servers behind the gateway (the dashboard) bound their responses themselves, its
# event stream to 15 minutes: this only catches a hang.
PLATFORM_REQUEST_TIMEOUT = 3600.0


@dataclass
class _RevisionParts:
    revision: Revision
    runner: RevisionRunner
    backend: RevisionBackend
    meter: ConcurrencyMeter
    usage: UsageSampler


class LocalRuntime:
    def __init__(
        self, kafka_bootstrap: str, logs: LogSink, options: Options = Options(), state_dir: Path | None = None
    ) -> None:
        """`state_dir` (knit dev: `.knit`) holds the token issuer's files under `oidc/`;
        without one they go to a temporary folder removed at stop."""
        self.kafka_bootstrap = kafka_bootstrap
        self.logs = logs
        self.options = options
        self.metrics = Metrics()
        self.routes = RouteTable(options.domain)
        self.backends: dict[str, RevisionBackend] = {}
        self.revisions: dict[str, _RevisionParts] = {}
        self.gateway = Gateway(
            self.routes,
            self.backends,
            self.metrics.gateway,
            activation_timeout=lambda _: options.activation_timeout,
            request_timeout=self._request_timeout,
            limits=options.gateway_limits,
            behind_proxy=options.data_plane == "haproxy",
        )
        self.data_plane: HaproxyDataPlane | None = None
        self.port = 0
        self._service_ports: dict[tuple[str, str], int] = {}
        self._folders: dict[tuple[str, str], Path] = {}
        self._adapters: dict[Identity, list[Adapter]] = {}
        self._ingress: Adapter | None = None
        self._ingress_port = free_port()
        self._base_env = base_environment()
        self._loop_task: asyncio.Task[None] | None = None
        # Sender identity: a new key pair for every runtime, token files kept fresh.
        oidc_folder = state_dir / "oidc" if state_dir else Path(tempfile.mkdtemp(prefix="knit-oidc-"))
        self._oidc_scratch = None if state_dir else oidc_folder  # removed at stop
        self.tokens = TokenFiles(oidc_folder)
        self.oidc = Oidc(self.tokens.issuer.name, str(self.tokens.jwks_path), self.tokens.token_file)
        self._renew_task: asyncio.Task[None] | None = None
        self.core = ControlCore(self, kafka_bootstrap, self.oidc, self.metrics.autoscaler)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.gateway.start_session()
        if self.options.data_plane == "haproxy":
            await self._start_haproxy()
        else:
            self.port = await self.gateway.listen(HOST, self.options.port, self.gateway.by_host)
        self._loop_task = asyncio.create_task(self.core.autoscale_forever())
        self._renew_task = asyncio.create_task(self._renew_tokens_forever())

    async def stop(self) -> None:
        for task in (self._loop_task, self._renew_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(p.stop() for processes in self._adapters.values() for p in processes))
        if self._ingress:
            await self._ingress.stop()
        await asyncio.gather(*(parts.runner.stop() for parts in self.revisions.values()))
        if self.data_plane:
            await self.data_plane.stop()
            shutil.rmtree(self.data_plane.proxy.folder, ignore_errors=True)
        await self.gateway.close()
        self.tokens.remove()
        if self._oidc_scratch:
            shutil.rmtree(self._oidc_scratch, ignore_errors=True)

    async def _start_haproxy(self) -> None:
        """HAProxy on the public port; the Python gateway behind it as the activator, on a port
        of its own that only HAProxy's connections reach (so its per-address limit is HAProxy's)."""
        haproxy.Haproxy(Path()).check()
        activator_limits = dataclasses.replace(
            self.options.gateway_limits, max_connections_per_address=haproxy.MAX_CONNECTIONS
        )
        activator = await self.gateway.listen(HOST, 0, self._activator_route, limits=activator_limits)
        self.port = self.options.port or free_port()
        ports = haproxy.Ports(public=self.port, activator=activator)
        folder = Path(tempfile.mkdtemp(prefix="knit-haproxy-"))
        self.data_plane = HaproxyDataPlane(
            folder, ports, self.options.gateway_limits, self.options.activation_timeout, self.routes
        )
        await self.data_plane.start()

    def _activator_route(self, request: Any) -> RouteEntry | None:
        """A request HAProxy passed to the activator: for the Revision it names, else for the
        cluster-local port it came in on, else by Host."""
        assert self.data_plane is not None
        parts = self.revisions.get(request.headers.get(haproxy.REVISION_HEADER, ""))
        if parts is not None:
            revision = parts.revision
            return RouteEntry(revision.service, revision.namespace, Split({revision.name: 100}))
        port = request.headers.get(haproxy.SERVICE_PORT_HEADER, "")
        service = self.data_plane.service_of_port(int(port)) if port.isdigit() else None
        if service is not None:
            return self.routes.service_route(service[1], service[0])
        return self.gateway.by_host(request)

    async def _renew_tokens_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self.tokens.renew()

    # --- what the control API and the tests ask: delegated to the control core ---------------

    @property
    def state(self) -> ServingState:
        return self.core.state

    @property
    def autoscaler_config(self) -> AutoscalerConfig:
        return self.core.autoscaler_config

    def admission_context(self) -> Context:
        return self.core.admission_context()

    def known(self) -> set[Identity]:
        return self.core.known()

    async def apply(self, manifests: Manifests) -> list[str]:
        """Apply admitted manifests (knit.admission.load_manifests with `admission_context()`)."""
        changes = await self.core.apply(manifests)
        if self.data_plane:
            await self.data_plane.apply()  # routes as applied before the caller hears back
        return changes

    async def delete(self, identities: list[Identity]) -> list[str]:
        return await self.core.delete(identities)

    def update_traffic(self, namespace: str, name: str, traffic: list[TrafficTarget]) -> None:
        self.core.update_traffic(namespace, name, traffic)

    def suspend(self, service: str, namespace: str = "default") -> None:
        self.core.suspend(service, namespace)

    def resume(self, service: str, namespace: str = "default") -> None:
        self.core.resume(service, namespace)

    async def wait_settled(self, timeout: float) -> None:
        await self.core.wait_settled(timeout)
        if self.data_plane:
            await self.data_plane.apply()  # the routes to the settled Revisions are in HAProxy too

    def eventing(self) -> list[dict[str, Any]]:
        return self.core.eventing_status()

    # --- addresses ---------------------------------------------------------------------

    def url_of(self, service: str, namespace: str = "default", tag: str | None = None) -> str:
        """The public URL (browsers and curl resolve *.localhost to 127.0.0.1)."""
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{self.routes.host_of(service, namespace, tag)}{port}"

    def _request_timeout(self, revision: str) -> float:
        parts = self.revisions.get(revision)
        return float(parts.revision.template.spec.timeout_seconds) if parts else PLATFORM_REQUEST_TIMEOUT

    def route_platform_service(self, service: str, namespace: str, port: int) -> str:
        """Route <service>.<namespace>.<domain> through the gateway to a server of knit's own on
        127.0.0.1:port (the dashboard), always up; its URL. Its backend's name has a dot, which
        no Revision's name can."""
        backend = RevisionBackend(f"{service}.{namespace}", 0)
        backend.add(Endpoint(f"{service}.{namespace}", HOST, port))
        self.backends[backend.revision] = backend
        self.routes.set_route(service, namespace, {backend.revision: 100}, {}, cluster_local=False)
        return self.url_of(service, namespace) + "/"

    def address_of(self, kind: str, namespace: str, name: str) -> str:
        """Where events for an addressable object go: a Service's cluster-local address
        (through the gateway), or a Broker's path on the ingress."""
        if kind == "Broker":
            return f"http://{HOST}:{self._ingress_port}/{namespace}/{name}"
        return f"http://{HOST}:{self._service_ports[(namespace, name)]}"

    def public_urls(self) -> dict[str, str]:
        return {
            record.service.name: self.url_of(record.service.name, record.service.namespace) + "/"
            for record in self.state.records.values()
            if not record.service.cluster_local
        }

    # --- Revisions: the Runtime side of the control core --------------------------------------

    async def prepare_service(self, service: Service, folder: Path) -> None:
        """Remember where the Service's manifest lives (relative paths start there) and give it a
        cluster-local port, kept for it when it is deleted so it comes back at the same address."""
        key = (service.namespace, service.name)
        self._folders[key] = folder
        if key in self._service_ports:
            return
        if self.data_plane:
            self._service_ports[key] = free_port()
            self.data_plane.add_service_port(self._service_ports[key], *key)
            await self.data_plane.apply()  # listening before anyone is given the address
        else:
            self._service_ports[key] = await self.gateway.listen(HOST, 0, self._cluster_local_route(*key))

    def _cluster_local_route(self, namespace: str, service: str) -> Any:
        return lambda _request: self.routes.service_route(service, namespace)

    async def run_revision(self, revision: Revision, service: Service, hooks: RevisionHooks) -> None:
        key = (service.namespace, service.name)
        backend, meter = metered_backend(revision, hooks)
        instances: Backend = backend
        if self.data_plane:  # HAProxy gets the instances too, and sends to them while there is capacity
            timeout = float(revision.template.spec.timeout_seconds)
            instances = self.data_plane.add_revision(revision.name, revision.container_concurrency, timeout, backend)
        folder = self._folders[key]

        def plan_for(name: str, port: int) -> ProcessPlan:
            binding = self.core.binding_for(revision)
            return instance_plan(
                name, revision, folder, port, self.kafka_bootstrap, binding, self.address_of, self._base_env, self.oidc
            )

        fork_server = await self._fork_server(revision, plan_for)
        runner = RevisionRunner(
            revision,
            plan_for,
            instances,
            self.logs,
            report=hooks.report,
            ready_timeout=self.options.ready_timeout,
            fork_server=fork_server,
        )
        self.backends[revision.name] = backend
        self.metrics.gateway.in_flight.labels(service.name, revision.name).set_function(lambda: backend.in_flight)
        self.revisions[revision.name] = _RevisionParts(revision, runner, backend, meter, UsageSampler())

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

    async def remove_revision(self, revision: str) -> None:
        parts = self.revisions.pop(revision, None)
        self.backends.pop(revision, None)
        if parts:
            self.metrics.forget_revision(parts.revision.service, revision)
            await parts.runner.stop()
        if self.data_plane:
            self.data_plane.remove_revision(revision)

    def scale(self, revision: str, desired: int) -> None:
        self.revisions[revision].runner.scale_to(desired)

    def ready_count(self, revision: str) -> int:
        return self.revisions[revision].runner.ready_count

    def traffic(self, revision: str, now: float) -> tuple[float, float]:
        concurrency, requests = self.revisions[revision].meter.collect(now)  # through the gateway
        if self.data_plane:  # and straight through HAProxy
            proxied, proxied_requests = self.data_plane.traffic(revision, now)
            concurrency, requests = concurrency + proxied, requests + proxied_requests
        return concurrency, requests

    def serve_through_activator(self, revision: str, through: bool) -> None:
        """With HAProxy, whether a Revision's requests go through the activator; without it they always do."""
        if self.data_plane:
            self.data_plane.serve_through_activator(revision, through)

    def usage(self, revision: str) -> tuple[float, float] | None:
        parts = self.revisions[revision]
        return parts.usage.sample([i.process.pid for i in parts.runner.instances if i.ready])

    def set_route(self, service: Service, route: Route, not_ready: str) -> None:
        self.routes.set_route(
            service.name, service.namespace, route.split, route.tags, service.cluster_local, not_ready
        )
        if self.data_plane:
            self.data_plane.routes_changed()

    def remove_route(self, namespace: str, name: str) -> None:
        self.routes.remove_service(name, namespace)
        if self.data_plane:
            self.data_plane.routes_changed()

    # --- eventing adapters: the Runtime side of the control core -------------------------------

    async def ensure_topics(self, topics: list[str]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, ensure_topics, self.kafka_bootstrap, topics)

    async def run_adapter(self, key: Identity, adapter: DesiredAdapter) -> None:
        await self.stop_adapter(key)
        plans = [self._adapter_plan(process) for process in adapter.processes]
        self._adapters[key] = list(await asyncio.gather(*(self._start_adapter(plan) for plan in plans)))

    async def stop_adapter(self, key: Identity) -> None:
        await asyncio.gather(*(process.stop() for process in self._adapters.pop(key, [])))

    async def run_ingress(self, config: IngressConfig | None) -> None:
        """One ingress process serves every Broker; it restarts when the Brokers change."""
        if self._ingress:
            await self._ingress.stop()
            self._ingress = None
        if config is not None:
            plan = self._adapter_plan(AdapterProcess.of("broker-ingress", INGRESS, config), self._ingress_port)
            self._ingress = await self._start_adapter(plan)

    def _adapter_plan(self, process: AdapterProcess, port: int | None = None) -> ProcessPlan:
        return adapter_plan(
            process.name, process.module, process.config_env, process.config, port or free_port(), self._base_env
        )

    async def _start_adapter(self, plan: ProcessPlan) -> Adapter:
        adapter = Adapter(plan, self.logs, self.options.ready_timeout)
        await adapter.start()
        return adapter

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
        status = self.core.status(record).to_knative()
        return {"name": name, "namespace": namespace, "status": status, "revisions": revisions}

    def adapters(self) -> list[dict[str, Any]]:
        """The platform's own processes (dispatchers, ingress, ping) as `knit dev` runs them."""
        running = [adapter for adapters in self._adapters.values() for adapter in adapters]
        if self._ingress:
            running.append(self._ingress)
        return [{"name": a.plan.name, "pid": a.pid, "port": a.plan.port, "restarts": a.restarts} for a in running]

    def services(self) -> list[dict[str, Any]]:
        return [self.describe(ns, name) for ns, name in sorted(self.state.records)]


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
