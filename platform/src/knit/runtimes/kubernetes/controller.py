"""The knit controller: knit Services in the Kubernetes API in, the control core deciding,
the Kubernetes runtime doing, status written back.

It lists and watches Services (serving.knit.dev/v1) in every namespace, admits each with
the same code as `knit apply` (so a bad one gets the same message, as its Ready
condition), applies it to the control core, and writes what Knative shows: the derived
Configuration and Route, and the status of the Service, its Configuration, Revisions and
Route, with `observedGeneration`. One replica leads at a time (a Lease); the others wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, NamedTuple

from aiohttp import web
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.leaderelection import electionconfig, leaderelection
from kubernetes.aio.leaderelection.resourcelock.leaselock import LeaseLock

from knit.admission import AUTOSCALER_CONFIG_MAP, admit_documents
from knit.control.desired import resolve_destination
from knit.control.render import render_service
from knit.control.status import condition_dict
from knit.observability import CONTENT_TYPE_LATEST, Metrics
from knit.resources.loading import Identity, InvalidManifests, Manifests
from knit.resources.model import (
    Broker,
    KafkaSource,
    PingSource,
    Resource,
    Service,
    SinkBinding,
    Trigger,
    served_api_version,
)
from knit.runtimes.kubernetes import objects
from knit.runtimes.kubernetes.api import Api
from knit.runtimes.kubernetes.runtime import (
    RETRY_SECONDS,
    SYSTEM_NAMESPACE,
    ClusterIssuer,
    ClusterOptions,
    KubernetesRuntime,
    first_line,
)
from knit.serving.state import Condition, InvalidApply, RevisionHealth

log = logging.getLogger("knit.kubernetes")

# What the controller watches and runs, as `knit apply` takes them: Services, and the eventing kinds.
WATCHED: dict[str, str] = {
    kind.__name__: served_api_version(kind) for kind in (Service, KafkaSource, PingSource, SinkBinding, Broker, Trigger)
}
API_VERSIONS = {**WATCHED, **dict.fromkeys(("Configuration", "Revision", "Route"), objects.SERVING_API)}
STATUS_INTERVAL = 0.5  # seconds between checks of what status to write
LEASE = "knit-controller"


class StatusKey(NamedTuple):
    kind: str
    namespace: str
    name: str
    owner_uid: str  # of the applied object (a Service, a KafkaSource...) that is or owns it


def admitted(obj: dict[str, Any]) -> Resource:
    """An object from the API as knit's model, through admission (InvalidManifests)."""
    metadata = obj["metadata"]
    document = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {key: metadata[key] for key in ("name", "namespace", "labels", "annotations") if key in metadata},
        **({"spec": obj["spec"]} if "spec" in obj else {}),  # a Broker may have none
    }
    where = f"{obj['kind']} {metadata['namespace']}/{metadata['name']}"
    return admit_documents([(where, document)], names_must_exist=False).resources[0]


def identity_of(obj: dict[str, Any]) -> Identity:
    return obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]


def invalid_status(generation: int, reason: str, problems: list[str]) -> dict[str, Any]:
    """Status of an object knit cannot run as written: Ready False, the problems as the message."""
    condition = Condition("Ready", "False", reason, "; ".join(problems))
    return {"observedGeneration": generation, "conditions": [condition_dict(condition)]}


class Controller:
    def __init__(self, api: Api, runtime: KubernetesRuntime) -> None:
        self.api = api
        self.runtime = runtime
        self.core = runtime.core
        # (uid, metadata.generation) last reconciled: an object deleted and made again is new.
        self.generations: dict[Identity, tuple[str, int]] = {}
        self.refused: dict[Identity, dict[str, Any]] = {}  # status of objects not applied
        self._written: dict[StatusKey, dict[str, Any]] = {}  # status last written on each object
        self._listed: set[str] = set()  # kinds listed and reconciled once

    @property
    def synced(self) -> bool:
        """Every watched object listed and reconciled once: the gateway knows its routes."""
        return self._listed == set(WATCHED)

    async def run(self) -> None:
        config_map = {"namespace": SYSTEM_NAMESPACE, "field_selector": f"metadata.name={AUTOSCALER_CONFIG_MAP}"}
        # The autoscaler's config first: Revisions take it when they start.
        await self._set_autoscaler_config((await self.api.list("v1", "ConfigMap", **config_map)).items)
        await asyncio.gather(
            *(
                self._follow_forever((api_version, kind), partial(self._resync, kind), self.reconcile, self.deleted)
                for kind, api_version in WATCHED.items()
            ),
            self._follow_forever(
                ("v1", "ConfigMap"),
                self._set_autoscaler_config,
                lambda obj: self._set_autoscaler_config([obj]),
                lambda _: self._set_autoscaler_config([]),
                **config_map,
            ),
            self._write_status_forever(),
        )

    async def _follow_forever(
        self,
        resource: tuple[str, str],
        listed: Callable[[list[dict[str, Any]]], Awaitable[None]],
        changed: Callable[[dict[str, Any]], Awaitable[None]],
        deleted: Callable[[dict[str, Any]], Awaitable[None]],
        **selectors: str,
    ) -> None:
        """List, then watch from there; list again when the watch ends or fails."""
        while True:
            try:
                listing = await self.api.list(*resource, **selectors)
                await listed(listing.items)
                async for kind, obj in self.api.watch(*resource, listing.resource_version, **selectors):
                    if kind == "DELETED":
                        await deleted(obj)
                    elif kind in ("ADDED", "MODIFIED"):
                        await changed(obj)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an expired watch (410), the API server away: list again
                log.info("%s watch restarts: %s", resource[1], first_line(error))
                await asyncio.sleep(RETRY_SECONDS)

    async def _set_autoscaler_config(self, config_maps: list[dict[str, Any]]) -> None:
        """knit-system/config-autoscaler, Knative's global autoscaler settings (the same keys as with
        `knit dev`); Knative's defaults when there is none. A bad one is logged and changes nothing."""
        key = ("ConfigMap", SYSTEM_NAMESPACE, AUTOSCALER_CONFIG_MAP)
        if not config_maps:
            if self.core.exists(*key):
                await self.core.delete([key])
            return
        obj = config_maps[0]
        document = {"apiVersion": "v1", "kind": "ConfigMap", "data": obj.get("data") or {},
                    "metadata": {"name": AUTOSCALER_CONFIG_MAP, "namespace": SYSTEM_NAMESPACE}}  # fmt: skip
        try:
            where = f"ConfigMap {SYSTEM_NAMESPACE}/{AUTOSCALER_CONFIG_MAP}"
            await self.core.apply(admit_documents([(where, document)]))
            log.info("config-autoscaler applied: %s", json.dumps(document["data"], sort_keys=True))
        except InvalidManifests as error:
            log.warning("config-autoscaler not applied: %s", "; ".join(error.problems))

    async def _resync(self, kind: str, items: list[dict[str, Any]]) -> None:
        """After a (re)list: reconcile each object, and delete those gone while not watching."""
        present = {identity_of(obj) for obj in items}
        for gone in [key for key in self.generations if key[0] == kind and key not in present]:
            await self.deleted({"kind": kind, "metadata": {"namespace": gone[1], "name": gone[2]}})
        for obj in items:
            await self.reconcile(obj)
        self._listed.add(kind)

    async def reconcile(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        key = identity_of(obj)
        generation = metadata.get("generation", 1)
        if self.generations.get(key) == (metadata["uid"], generation):
            return  # a status write or a label: nothing to run differently
        self.runtime.owners[key] = objects.Owner(obj["apiVersion"], key[0], key[2], metadata["uid"])
        try:
            await self.core.apply(Manifests((admitted(obj),)))
            self.refused.pop(key, None)
        except InvalidManifests as error:
            self.refused[key] = invalid_status(generation, "InvalidSpec", error.problems)
        except InvalidApply as error:
            self.refused[key] = invalid_status(generation, "InvalidApply", error.problems)
        record = self.core.state.records.get(key[1:]) if key[0] == "Service" else None
        if record is not None and key not in self.refused:
            for derived in objects.derived(self._render(record), self.runtime.owners[key]):
                if derived["kind"] != "Revision":  # Revisions are made as they start (the runtime)
                    await self.api.apply(derived)
        if key[0] == "SinkBinding":
            await self.runtime.rebind()
        # Last: should anything above fail, the next listing reconciles this generation again.
        self.generations[key] = (metadata["uid"], generation)

    async def deleted(self, obj: dict[str, Any]) -> None:
        key = identity_of(obj)
        self.generations.pop(key, None)
        self.refused.pop(key, None)
        if self.core.exists(*key):
            await self.core.delete([key])  # the objects it owns go by owner references
        self.runtime.owners.pop(key, None)
        if key[0] == "SinkBinding":
            await self.runtime.rebind()

    # --- status out --------------------------------------------------------------------------

    def _render(self, record: Any) -> list[dict[str, Any]]:
        def url_of(name: str, namespace: str, tag: str | None) -> str | None:
            return None if record.service.cluster_local else self.runtime.url_of(name, namespace, tag)

        return render_service(self.core.state, record, url_of)

    def statuses(self) -> dict[StatusKey, dict[str, Any]]:
        """What every object's status should say now. Keys carry the uid of the applied object
        that is or owns it: one deleted and made again under its name is new, and so is what it owns."""
        wanted: dict[StatusKey, dict[str, Any]] = {}
        for key, status in self.refused.items():
            wanted[StatusKey(*key, self.runtime.owners[key].uid)] = status
        for (namespace, name), record in self.core.state.records.items():
            key = ("Service", namespace, name)
            if key in self.refused or key not in self.generations:
                continue
            uid, generation = self.generations[key]
            status = self.core.status(record).to_knative()
            status["observedGeneration"] = generation
            wanted[StatusKey(*key, uid)] = status
            conditions = status["conditions"]
            for derived in self._render(record):
                kind, derived_name = derived["kind"], derived["metadata"]["name"]
                if kind == "Revision":
                    wanted[StatusKey(kind, namespace, derived_name, uid)] = self._revision_status(derived_name)
                else:
                    wanted[StatusKey(kind, namespace, name, uid)] = {
                        **derived.get("status", {}),
                        "conditions": conditions,
                    }
        for row in self.core.eventing_status():
            key = (str(row["kind"]), str(row["namespace"]), str(row["name"]))
            if key in self.refused or key not in self.generations:
                continue
            uid, generation = self.generations[key]
            status = {"observedGeneration": generation, "conditions": row["conditions"]}
            if key[0] == "Broker":
                status["address"] = {"url": self.runtime.address_of(*key)}
            elif (sink := getattr(self.core.applied[key].spec, "sink", None)) is not None:
                status["sinkUri"] = resolve_destination(sink, key[1], self.runtime.address_of)
            wanted[StatusKey(*key, uid)] = status
        return wanted

    def _revision_status(self, name: str) -> dict[str, Any]:
        health = self.core.state.health.get(name, RevisionHealth(None))
        state = {True: "True", False: "False", None: "Unknown"}[health.ready]
        ready = Condition("Ready", state, health.reason or "", health.message or "")
        running = self.runtime.running.get(name)
        return {
            "conditions": [condition_dict(ready)],
            "actualReplicas": self.runtime.ready_count(name) if running else 0,
            "desiredReplicas": running.desired if running else 0,
        }

    async def write_status(self) -> None:
        wanted = self.statuses()
        for key, status in wanted.items():
            if self._written.get(key) == status:
                continue
            try:
                await self.api.patch_status(API_VERSIONS[key.kind], key.kind, key.namespace, key.name, status)
                self._written[key] = status
            except Exception as error:  # gone meanwhile, or the API server away: next round
                log.info("status of %s %s/%s not written: %s", key.kind, key.namespace, key.name, error)
        self._written = {key: status for key, status in self._written.items() if key in wanted}

    async def _write_status_forever(self) -> None:
        while True:
            await self.write_status()
            await asyncio.sleep(STATUS_INTERVAL)


class _LeaseLock(LeaseLock):
    """The client's LeaseLock, except `create`: kubernetes 37.0.2's passes `pretty=True` to its own
    generated API, which wants a string and refuses it, so a Lease could never be created."""

    async def create(self, name: str, namespace: str, election_record: Any) -> bool:
        body = client.V1Lease(metadata=client.V1ObjectMeta(name=name), spec=self.update_lease(election_record))
        try:
            await self.api_instance.create_namespaced_lease(namespace, body)
            return True
        except ApiException as error:
            log.warning("creating the Lease %s/%s failed: %s", namespace, name, error.reason)
            return False


async def lead(api: Api, identity: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `work` while this replica holds the controller's Lease. Returns when the Lease is lost;
    raises what `work` raised if it failed (and then stops renewing the Lease for another replica)."""
    lock = _LeaseLock(LEASE, SYSTEM_NAMESPACE, identity, api.api_client)
    failures: list[Exception] = []
    election: asyncio.Task[None]

    async def guarded() -> None:
        log.info("%s leads (Lease %s/%s)", identity, SYSTEM_NAMESPACE, LEASE)
        try:
            await work()
        except Exception as error:
            failures.append(error)
            election.cancel()

    async def on_stopped() -> None:
        log.warning("%s lost the Lease %s/%s", identity, SYSTEM_NAMESPACE, LEASE)

    config = electionconfig.Config(lock, lease_duration=15, renew_deadline=10, retry_period=2,
                                   onstarted_leading=guarded, onstopped_leading=on_stopped)  # fmt: skip
    election = asyncio.create_task(leaderelection.LeaderElection(config).run())
    with contextlib.suppress(asyncio.CancelledError):
        await election
    if failures:
        raise failures[0]


async def serve(kubeconfig: str | None, identity: str, options: ClusterOptions) -> None:
    """`knit controller`: the gateway serves at once; the Lease's holder reconciles. On the health
    port, /readyz answers 200 once this replica leads and has every route (then its pod is Ready),
    and /metrics serves the gateway's and autoscaler's metrics."""
    api = await Api.connect(kubeconfig)
    runtime = KubernetesRuntime(api, options, await cluster_issuer(api))
    controller = Controller(api, runtime)
    await runtime.start()
    health = await _serve_health(options.health_port, lambda: controller.synced, runtime.metrics)
    log.info("gateway on port %d; %s waits for the Lease %s/%s", runtime.port, identity, SYSTEM_NAMESPACE, LEASE)
    try:
        await lead(api, identity, controller.run)
        # What it knows may be stale now: a fresh start (Kubernetes restarts the pod) lists again.
        raise SystemExit(f"{identity} lost the Lease {SYSTEM_NAMESPACE}/{LEASE}; exiting")
    finally:
        await health.cleanup()
        await runtime.stop()
        await api.close()


async def cluster_issuer(api: Api) -> ClusterIssuer | None:
    """The API server's ServiceAccount token issuer (its OIDC discovery): the issuer of senders'
    identities, as in Knative. None, and events are sent without tokens, when it has none."""
    try:
        discovery = await api.get_json("/.well-known/openid-configuration")
        return ClusterIssuer(discovery["issuer"], await api.get_json("/openid/v1/jwks"))
    except Exception as error:  # an API server without service account issuer discovery
        log.warning("no sender identity: the API server's token issuer is not readable: %s", error)
        return None


async def _serve_health(port: int, ready: Callable[[], bool], metrics: Metrics) -> web.AppRunner:
    """/readyz, and the gateway's and autoscaler's Prometheus metrics at /metrics (as knit dev's)."""

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready")
        return web.Response(status=503, text="not leading, or routes not listed yet")

    async def exposition(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", exposition)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
