"""The Kubernetes runtime: the control core's decisions as Kubernetes objects.

Kubernetes runs the instances; this only says what should exist. A Revision is a
Deployment (scaled by the autoscaler through the scale subresource) and a Service whose
EndpointSlices list its ready pods; those pods are the gateway's backends. The gateway,
activator and autoscaler are the same code as in `knit dev`, in the controller's process:
requests for a Revision at zero wait in the activator while a pod starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knit.autoscaling.metrics import ConcurrencyMeter
from knit.control.core import ControlCore, RevisionHooks, metered_backend
from knit.control.desired import INGRESS, SINK_AUDIENCE_ENV, AdapterProcess, DesiredAdapter, Oidc, instance_env
from knit.eventing.ingress import IngressConfig
from knit.gateway.activator import Endpoint, RevisionBackend
from knit.gateway.limits import GatewayLimits
from knit.gateway.proxy import Gateway
from knit.gateway.routing import RouteEntry, RouteTable, cluster_local_service
from knit.kafka.admin import ensure_topics
from knit.observability import Metrics
from knit.resources.loading import Identity
from knit.resources.model import Service
from knit.runtimes.kubernetes import objects
from knit.runtimes.kubernetes.api import Api
from knit.serving.revisions import Revision
from knit.serving.state import RevisionHealth
from knit.serving.traffic import Route

log = logging.getLogger("knit.kubernetes")

SYSTEM_NAMESPACE = "knit-system"
GATEWAY_SERVICE = "knit-gateway"  # the Kubernetes Service in front of the controller's gateway
BROKER_INGRESS = "knit-broker-ingress"  # the Deployment and Service of every Broker's ingress
RETRY_SECONDS = 1.0  # after a failed call to the API server


@dataclass(frozen=True)
class ClusterOptions:
    kafka_bootstrap: str = ""
    adapter_image: str = "knit/platform:dev"  # the image eventing adapters run in (knit's own)
    domain: str = "localhost"  # public hosts: {service}.{namespace}.{domain}
    public_port: int = 8080  # the port people reach the gateway on (kind maps it to 127.0.0.1:8080)
    gateway_port: int = 8080  # where the gateway listens in its pod
    health_port: int = 8081  # /readyz: 200 once this replica leads and knows every route
    activation_timeout: float = 60.0
    gateway_limits: GatewayLimits = field(default_factory=GatewayLimits)


@dataclass(frozen=True)
class ClusterIssuer:
    """The API server as the issuer of sender identities: its `iss` and public keys (JWKS)."""

    issuer: str
    jwks: dict[str, Any]


@dataclass
class _Running:
    revision: Revision
    hooks: RevisionHooks
    backend: RevisionBackend
    meter: ConcurrencyMeter
    desired: int = 0
    scaled: int | None = None  # what the Deployment was last told (None: not yet known)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # ready pods by address
    ready_once: bool = False
    making: asyncio.Task[None] | None = None  # its objects being made
    env: dict[str, str] | None = None  # the platform's variables its Deployment was given


class KubernetesRuntime:
    def __init__(
        self, api: Api, options: ClusterOptions = ClusterOptions(), issuer: ClusterIssuer | None = None
    ) -> None:
        self.api = api
        self.options = options
        self.issuer = issuer
        self.metrics = Metrics()
        self.routes = RouteTable(options.domain)
        self.backends: dict[str, RevisionBackend] = {}
        self.running: dict[str, _Running] = {}
        self.owners: dict[Identity, objects.Owner] = {}  # the API objects of applied resources
        self.gateway = Gateway(
            self.routes,
            self.backends,
            self.metrics.gateway,
            activation_timeout=lambda _: options.activation_timeout,
            request_timeout=lambda name: float(self.running[name].revision.template.spec.timeout_seconds),
            limits=options.gateway_limits,
        )
        # Sender identity: the API server issues the tokens, the kubelet puts them in the pods.
        self._token_audiences: dict[str, str] = {}  # token file → its audience
        self.oidc = Oidc(issuer.issuer, objects.JWKS_FILE, self._token_file) if issuer else None
        self.core = ControlCore(self, options.kafka_bootstrap, oidc=self.oidc, metrics=self.metrics.autoscaler)
        self.port = 0
        self._scale_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # objects being made (_keep_trying)
        self._slices: dict[tuple[str, str], dict[str, Any]] = {}  # Revisions' EndpointSlices, watched
        self._topics: set[str] = set()  # asked for (made, or being made in _topics_made)
        self._topics_made: asyncio.Task[None] | None = None  # the topics asked for last, and those before
        self._adapters: dict[Identity, list[str]] = {}  # each eventing resource's Deployments
        self._adapter_tasks: dict[Identity, asyncio.Task[None]] = {}
        self._ingress_task: asyncio.Task[None] | None = None

    async def start(self, host: str = "0.0.0.0") -> None:
        await self.gateway.start_session()
        self.port = await self.gateway.listen(host, self.options.gateway_port, self.route_of)
        self._tasks = [
            asyncio.create_task(self.core.autoscale_forever()),
            asyncio.create_task(self._scale_forever()),
            asyncio.create_task(self._watch_endpoints_forever()),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.gateway.close()

    def route_of(self, request: Any) -> RouteEntry | None:
        """A public host ({service}.{namespace}.{domain}, tags too), else a Service's cluster-local name."""
        host = request.host or ""
        entry = self.routes.match(host)
        if entry is None and (service := cluster_local_service(host)):
            entry = self.routes.service_route(*service)
        return entry

    # --- addresses --------------------------------------------------------------------------

    def url_of(self, service: str, namespace: str, tag: str | None) -> str:
        port = "" if self.options.public_port == 80 else f":{self.options.public_port}"
        return f"http://{self.routes.host_of(service, namespace, tag)}{port}"

    def address_of(self, kind: str, namespace: str, name: str) -> str:
        if kind == "Broker":
            return f"http://knit-broker-ingress.{SYSTEM_NAMESPACE}.svc.cluster.local/{namespace}/{name}"
        return f"http://{name}.{namespace}.svc.cluster.local"

    # --- Revisions --------------------------------------------------------------------------

    async def prepare_service(self, service: Service, folder: Path) -> None:
        """Its cluster-local name, {service}.{namespace}.svc.cluster.local: an ExternalName Service to the gateway."""
        owner = self.owners[("Service", service.namespace, service.name)]
        address = objects.service_address(service, owner, f"{GATEWAY_SERVICE}.{SYSTEM_NAMESPACE}")
        self._keep_trying(f"Service {service.namespace}/{service.name}'s address", lambda: self.api.create(address))

    async def run_revision(self, revision: Revision, service: Service, hooks: RevisionHooks) -> None:
        """Known at once (the control core goes on deciding); its objects are made in the background,
        tried again while the API server fails, so a refusal or an outage never loses a Revision."""
        backend, meter = metered_backend(revision, hooks)
        running = _Running(revision, hooks, backend, meter)
        self.running[revision.name] = running
        self.backends[revision.name] = backend
        owner = self.owners[("Service", service.namespace, service.name)]

        async def make_objects() -> None:
            created = await self.api.apply(objects.revision_object(revision, owner))
            revision_owner = objects.Owner(objects.SERVING_API, "Revision", revision.name, created["metadata"]["uid"])
            running.env = self._instance_env(revision)
            await self._identity_for(revision.namespace, revision.template.spec.service_account_name)
            deployment = await self.api.create(self._revision_deployment(revision, running.env, revision_owner))
            await self.api.create(objects.revision_service(revision, revision_owner))
            running.scaled = deployment["spec"].get("replicas", 0)  # now the autoscaler's word can be passed on
            self._scale_wanted.set()
            self._set_endpoints()  # its pods may be ready already (this controller started after them)

        running.making = self._keep_trying(f"Revision {revision.namespace}/{revision.name}'s objects", make_objects)

    def _instance_env(self, revision: Revision) -> dict[str, str]:
        binding = self.core.binding_for(revision)
        return instance_env(revision, self.options.kafka_bootstrap, binding, self.address_of, self.oidc)

    def _revision_deployment(self, revision: Revision, env: dict[str, str], owner: objects.Owner) -> dict[str, Any]:
        deployment = objects.revision_deployment(revision, env, 0, owner)
        if not self.oidc:
            return deployment
        audiences = [env[SINK_AUDIENCE_ENV]] if SINK_AUDIENCE_ENV in env else []
        return objects.with_identity(deployment, None, audiences, jwks=True)

    def _token_file(self, subject: str, audience: str) -> str:
        """Oidc.token_file on Kubernetes: the pod's projected token for `audience`; the subject is
        the ServiceAccount the pod runs as."""
        path = objects.token_path(audience)
        self._token_audiences[path] = audience
        return path

    async def _identity_for(self, namespace: str, account: str | None, owner: objects.Owner | None = None) -> None:
        """What pods in `namespace` running as `account` need to send and check tokens: the issuer's
        keys in the namespace, and the ServiceAccount (made when missing, as Knative makes each
        source's)."""
        if not self.issuer:
            return
        await self.api.apply(objects.jwks_config_map(namespace, self.issuer.jwks))
        if account and account != "default":
            await self.api.create(objects.service_account(account, namespace, owner))

    async def rebind(self) -> None:
        """After a SinkBinding changed: each Revision whose K_SINK (or K_CE_OVERRIDES) is now
        different gets it in its pod template, as Knative's SinkBinding patches its subject;
        Kubernetes rolls its pods."""
        for running in list(self.running.values()):
            revision = running.revision
            if running.env is None or running.env == (env := self._instance_env(revision)):
                continue  # its Deployment is not made yet (it will take the binding), or unchanged
            pod = self._revision_deployment(revision, env, objects.Owner("", "", "", ""))["spec"]["template"]["spec"]
            # A merge patch: these lists replace the template's; a null removes its volumes.
            patch = {"spec": {"template": {"spec": {"containers": pod["containers"], "volumes": pod.get("volumes")}}}}
            await self.api.patch(
                "apps/v1", "Deployment", revision.namespace, objects.deployment_name(revision.name), patch
            )
            running.env = env

    def _keep_trying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
        """Run `attempt` in the background until it succeeds, RETRY_SECONDS after each failure."""

        async def until_done() -> None:
            while True:
                try:
                    await attempt()
                    return
                except Exception as error:  # the API server away, overloaded (429), or refusing
                    log.warning("%s: not made yet, trying again: %s", what, first_line(error))
                    await asyncio.sleep(RETRY_SECONDS)

        task = asyncio.create_task(until_done())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def remove_revision(self, revision: str) -> None:
        """Forget it: its objects go with their knit Service (owner references)."""
        running = self.running.pop(revision, None)
        self.backends.pop(revision, None)
        if running and running.making:
            running.making.cancel()

    def scale(self, revision: str, desired: int) -> None:
        running = self.running[revision]
        if running.desired != desired:
            running.desired = desired
            self._scale_wanted.set()

    def serve_through_activator(self, revision: str, through: bool) -> None:
        """Every request goes through the gateway, which is also the activator."""

    def ready_count(self, revision: str) -> int:
        return len(self.running[revision].endpoints)

    def traffic(self, revision: str, now: float) -> tuple[float, float]:
        return self.running[revision].meter.collect(now)

    def usage(self, revision: str) -> tuple[float, float] | None:
        return None  # HPA-class Revisions on Kubernetes get an HPA (not built yet), not this

    def set_route(self, service: Service, route: Route, not_ready: str) -> None:
        self.routes.set_route(
            service.name, service.namespace, route.split, route.tags, service.cluster_local, not_ready
        )

    def remove_route(self, namespace: str, name: str) -> None:
        self.routes.remove_service(name, namespace)

    async def _scale_forever(self) -> None:
        """Tell each Deployment its desired replicas when that changed; retried while the API fails."""
        while True:
            await self._scale_wanted.wait()
            self._scale_wanted.clear()
            for running in list(self.running.values()):
                if running.scaled is None or running.scaled == running.desired:
                    continue  # its Deployment is not made yet, or already told
                revision = running.revision
                try:
                    await self.api.scale(revision.namespace, objects.deployment_name(revision.name), running.desired)
                    running.scaled = running.desired
                except Exception as error:  # the API server away or the Deployment gone: try again
                    log.warning("scaling %s to %d failed: %s", revision.name, running.desired, error)
                    self._scale_wanted.set()
                    await asyncio.sleep(RETRY_SECONDS)

    async def _watch_endpoints_forever(self) -> None:
        """Ready pods from the Revisions' EndpointSlices, as the gateway's backends."""
        while True:
            try:
                listing = await self.api.list("discovery.k8s.io/v1", "EndpointSlice", objects.REVISION_LABEL)
                self._slices = {_key(s): s for s in listing.items}
                self._set_endpoints()
                async for kind, endpoint_slice in self.api.watch(
                    "discovery.k8s.io/v1", "EndpointSlice", listing.resource_version, objects.REVISION_LABEL
                ):
                    if kind == "DELETED":
                        self._slices.pop(_key(endpoint_slice), None)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._slices[_key(endpoint_slice)] = endpoint_slice
                    self._set_endpoints()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # expired watch (410), the API server away: list again
                log.info("endpoint watch restarts: %s", error)
                await asyncio.sleep(RETRY_SECONDS)

    def _set_endpoints(self) -> None:
        """Each Revision's backends: its ready pods in the EndpointSlices known now."""
        ready = objects.ready_endpoints(self._slices.values())
        for name, running in self.running.items():
            addresses = ready.get(name, {})
            for address in [a for a in running.endpoints if a not in addresses]:
                running.backend.remove(running.endpoints.pop(address))
            for address, (pod, port) in addresses.items():
                if address not in running.endpoints:
                    host = address.rpartition(":")[0]
                    running.endpoints[address] = endpoint = Endpoint(pod, host, port)
                    running.backend.add(endpoint)
            if running.endpoints and not running.ready_once:
                running.ready_once = True
                running.hooks.report(RevisionHealth(True))

    # --- eventing ----------------------------------------------------------------------------

    async def ensure_topics(self, topics: list[str]) -> None:
        """Made in the background (Kafka may not be up yet); adapters start once they exist."""
        wanted = [t for t in topics if t not in self._topics]
        if not wanted:
            return
        self._topics.update(wanted)
        bootstrap = self.options.kafka_bootstrap
        loop = asyncio.get_running_loop()
        previous = self._topics_made

        async def make_topics() -> None:
            await _done(previous)
            await loop.run_in_executor(None, ensure_topics, bootstrap, wanted)

        self._topics_made = self._keep_trying(f"Kafka topics {', '.join(wanted)} on {bootstrap}", make_topics)

    async def run_adapter(self, key: Identity, adapter: DesiredAdapter) -> None:
        """Its Deployments, in its namespace and owned by it, once its topics exist; a changed
        adapter's are replaced (Kubernetes rolls their pods)."""
        owner = self.owners[key]
        topics = self._topics_made
        deployments = [self._adapter_deployment(process, key[1], owner) for process in adapter.processes]

        async def make() -> None:
            await _done(topics)
            for deployment in deployments:
                account = deployment["spec"]["template"]["spec"].get("serviceAccountName")
                await self._identity_for(key[1], account, owner)
            previous = self._adapters.get(key, [])
            for deployment in deployments:
                await self.api.apply(deployment)
            names = {d["metadata"]["name"] for d in deployments}
            for name in [n for n in previous if n not in names]:  # fewer consumers than before
                await self.api.delete("apps/v1", "Deployment", key[1], name)
            self._adapters[key] = sorted(names)
            log.info("%s: Deployments %s", adapter.describe, ", ".join(sorted(names)))

        await self.stop_adapter(key, keep_objects=True)
        self._adapter_tasks[key] = self._keep_trying(adapter.describe, make)

    def _adapter_deployment(
        self, process: AdapterProcess, namespace: str, owner: objects.Owner | None
    ) -> dict[str, Any]:
        """With sender identity: running as the ServiceAccount its configuration names as its
        identity, with a token for each audience it sends to."""
        deployment = objects.adapter_deployment(process, self.options.adapter_image, namespace, owner)
        config = json.loads(process.config)
        if not self.oidc or not config.get("identity"):
            return deployment
        account = config["identity"].rpartition(":")[2]
        files = [value for name, value in config.items() if name.endswith("token_file") and value]
        return objects.with_identity(deployment, account, [self._token_audiences[f] for f in files], jwks=False)

    async def stop_adapter(self, key: Identity, keep_objects: bool = False) -> None:
        """Its Deployments deleted (also by the garbage collector once its resource is gone)."""
        if task := self._adapter_tasks.pop(key, None):
            task.cancel()
        if keep_objects:
            return
        for name in self._adapters.pop(key, []):
            await self.api.delete("apps/v1", "Deployment", key[1], name)

    async def run_ingress(self, config: IngressConfig | None) -> None:
        """One ingress for every Broker, BROKER_INGRESS in the system namespace: a Deployment
        (replaced when the Brokers change) and the Service that is the Brokers' address."""
        process = AdapterProcess.of(BROKER_INGRESS, INGRESS, config) if config else None
        topics = self._topics_made

        async def make() -> None:
            if process is None:
                await self.api.delete("apps/v1", "Deployment", SYSTEM_NAMESPACE, BROKER_INGRESS)
                await self.api.delete("v1", "Service", SYSTEM_NAMESPACE, BROKER_INGRESS)
                return
            await _done(topics)
            await self.api.apply(
                objects.adapter_deployment(process, self.options.adapter_image, SYSTEM_NAMESPACE, None)
            )
            await self.api.apply(objects.adapter_service(process, SYSTEM_NAMESPACE))

        if self._ingress_task:
            self._ingress_task.cancel()
        self._ingress_task = self._keep_trying(f"the Brokers' ingress ({BROKER_INGRESS})", make)


def first_line(error: BaseException) -> str:
    """What to log of an error: its message's first line, or its type when it has no message."""
    return (str(error).splitlines() or [type(error).__name__])[0]


async def _done(task: asyncio.Task[None] | None) -> None:
    """Until `task` is done; cancelling the caller leaves the task running (others wait on it too)."""
    if task is not None:
        await asyncio.shield(task)


def _key(endpoint_slice: dict[str, Any]) -> tuple[str, str]:
    metadata = endpoint_slice["metadata"]
    return metadata["namespace"], metadata["name"]
