"""The Kubernetes objects knit makes for what the control core decided (pure logic).

As Knative's `pkg/reconciler/*/resources`: plain dicts from resources, table-tested
without an API server. A knit Service owns its Configuration, Revisions and Route (the
objects `knit render` prints); each Revision owns a Deployment (its instances, scaled
through the scale subresource) and a Kubernetes Service (its ready pods, by
EndpointSlices). Deleting the knit Service takes all of them with it (owner references,
Kubernetes' garbage collector).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from knit.control import render
from knit.control.desired import AdapterProcess
from knit.resources.model import Container, Probe, Service
from knit.serving.revisions import Revision

SERVING_API = render.API_VERSION
REVISION_LABEL = "serving.knit.dev/revision"
ADAPTER_LABEL = "eventing.knit.dev/adapter"  # a dispatcher's, ping's or the Brokers' ingress's pods
ADAPTER_PORT = 8080  # where an adapter serves /readyz (the ingress: also the events it takes)
# Sender identity, as Knative's OIDC: the API server is the issuer. Its public keys go to each
# namespace in a ConfigMap every pod mounts; a sender's tokens are projected ServiceAccount
# tokens (one per audience), which the kubelet renews in place.
OIDC_CONFIG_MAP = "knit-oidc"
OIDC_DIR = "/var/run/knit/oidc"
JWKS_FILE = f"{OIDC_DIR}/jwks.json"
TOKENS_DIR = "/var/run/knit/tokens"
TOKEN_SECONDS = 3600  # the kubelet renews a projected token at 80% of its life
MANAGED_BY = {"app.kubernetes.io/managed-by": "knit"}
CONTAINER_NAME = "user-container"  # Knative's name for the serving container
DEFAULT_PORT = 8080  # Knative's: the container port when the container names none
# Pod Security "restricted": what every pod knit makes runs with.
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class Owner:
    """The object that owns another: deleting it deletes what it owns."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def owned(metadata: Mapping[str, Any], owner: Owner) -> dict[str, Any]:
    return {**metadata, "ownerReferences": [owner.reference()]}


def deployment_name(revision: str) -> str:
    return f"{revision}-deployment"  # as Knative names it


def revision_labels(revision: Revision) -> dict[str, str]:
    """A Revision's pods and Service: as its Revision object, and the Revision's own name."""
    return {**render.revision_labels(revision), REVISION_LABEL: revision.name}


def revision_object(revision: Revision, owner: Owner) -> dict[str, Any]:
    """The Revision as `knit render` prints it, owned by its Service (status written apart)."""
    manifest = render.revision_manifest(revision)
    return {**manifest, "metadata": owned(manifest["metadata"], owner)}


def service_address(service: Service, owner: Owner, gateway: str) -> dict[str, Any]:
    """The Service's cluster-local name ({name}.{namespace}.svc.cluster.local): an ExternalName to
    the gateway, which routes by Host, as Knative points it at its ingress."""
    metadata = {"name": service.name, "namespace": service.namespace, "labels": {render.SERVICE_LABEL: service.name}}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owned(metadata, owner),
        "spec": {
            "type": "ExternalName",
            "externalName": f"{gateway}.svc.cluster.local",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def ready_endpoints(slices: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[str, int]]]:
    """Per Revision, its ready pods from EndpointSlices: address "ip:port" → (pod name, port)."""
    ready: dict[str, dict[str, tuple[str, int]]] = {}
    for endpoint_slice in slices:
        revision = endpoint_slice["metadata"].get("labels", {}).get(REVISION_LABEL)
        ports = [p["port"] for p in endpoint_slice.get("ports") or [] if p.get("port")]
        if not revision or not ports:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue
            pod = (endpoint.get("targetRef") or {}).get("name", "")
            for address in endpoint.get("addresses") or []:
                ready.setdefault(revision, {})[f"{address}:{ports[0]}"] = (pod or address, ports[0])
    return ready


def container_port(container: Container) -> int:
    return container.ports[0].container_port if container.ports else DEFAULT_PORT


def _probe(probe: Probe | None, port: int, readiness: bool) -> dict[str, Any] | None:
    """A readiness or liveness probe with its port filled in (Knative's default: the container's)."""
    if probe is None:
        return None
    rendered = probe.model_dump(mode="json", by_alias=True, exclude_none=True)
    if readiness and "period_seconds" not in probe.model_fields_set:
        # Knative probes a starting pod every few milliseconds (its queue-proxy) when no period is
        # given; without a queue-proxy, kubelet's finest: each second, not Kubernetes' default 10
        # (a pod that misses the first probe would keep a request at zero waiting ~10 s).
        rendered["periodSeconds"] = 1
    for action in ("httpGet", "tcpSocket"):
        if action in rendered:
            rendered[action]["port"] = rendered[action].get("port") or port
    return rendered


def revision_deployment(revision: Revision, env: Mapping[str, str], replicas: int, owner: Owner) -> dict[str, Any]:
    """The Deployment that runs a Revision's instances: its container as written, with PORT and
    the platform's K_* variables (`env`, from knit.control.desired.instance_env) after its own."""
    spec = revision.template.spec
    container = spec.container
    port = container_port(container)
    labels = revision_labels(revision)
    # PORT and HOST as `knit dev` gives them; in a pod, every interface (the pod's own network).
    variables = {**{var.name: var.value for var in container.env}, "PORT": str(port), "HOST": "0.0.0.0", **env}
    rendered: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": container.image,
        "imagePullPolicy": container.image_pull_policy or "IfNotPresent",
        "env": [{"name": name, "value": value} for name, value in variables.items()],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "securityContext": RESTRICTED_CONTAINER,
    }
    for key, value in (("command", container.command), ("args", container.args), ("workingDir", container.working_dir)):
        if value:
            rendered[key] = value
    for key, probe in (("readinessProbe", container.readiness_probe), ("livenessProbe", container.liveness_probe)):
        if probe is not None:
            rendered[key] = _probe(probe, port, readiness=key == "readinessProbe")
    if container.resources:
        rendered["resources"] = container.resources.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    pod_spec: dict[str, Any] = {
        "containers": [rendered],
        "enableServiceLinks": False,  # as Knative: no *_SERVICE_HOST variables for every Service in the namespace
        "terminationGracePeriodSeconds": spec.timeout_seconds,  # requests in flight may finish
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    metadata = {"name": deployment_name(revision.name), "namespace": revision.namespace, "labels": labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owned(metadata, owner),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {REVISION_LABEL: revision.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": labels, "annotations": dict(revision.annotations)},
                "spec": pod_spec,
            },
        },
    }


def revision_service(revision: Revision, owner: Owner) -> dict[str, Any]:
    """The Kubernetes Service whose EndpointSlices list a Revision's ready pods (the gateway's backends)."""
    port = container_port(revision.template.spec.container)
    metadata = {"name": revision.name, "namespace": revision.namespace, "labels": revision_labels(revision)}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owned(metadata, owner),
        "spec": {
            "selector": {REVISION_LABEL: revision.name},
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }


def adapter_name(process: AdapterProcess) -> str:
    """A DNS-1123 name from the process's (`kafkasource/feed/2` → `kafkasource-feed-2`)."""
    return process.name.replace("/", "-")


def adapter_deployment(
    process: AdapterProcess, image: str, namespace: str, owner: Owner | None, env: Mapping[str, str] = {}
) -> dict[str, Any]:
    """An eventing adapter (a KafkaSource's or Trigger's dispatcher, a PingSource, the Brokers'
    ingress) as one pod of the platform's image: `python -m <module>`, its configuration as JSON
    in the environment, as `knit dev` runs it. Owned by its resource, it goes when that goes."""
    name = adapter_name(process)
    labels = {ADAPTER_LABEL: name, **MANAGED_BY}
    variables = {**env, process.config_env: process.config, "PORT": str(ADAPTER_PORT), "HOST": "0.0.0.0"}
    container = {
        "name": "adapter",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", process.module],
        "env": [{"name": key, "value": value} for key, value in variables.items()],
        "ports": [{"name": "http", "containerPort": ADAPTER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": ADAPTER_PORT}, "periodSeconds": 2},
        "securityContext": RESTRICTED_CONTAINER,
    }
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owned(metadata, owner) if owner else metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {ADAPTER_LABEL: name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,  # an adapter never calls the API server
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                },
            },
        },
    }


def adapter_service(process: AdapterProcess, namespace: str) -> dict[str, Any]:
    """The address of an adapter that takes requests (the Brokers' ingress): port 80 → its pod."""
    name = adapter_name(process)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {ADAPTER_LABEL: name, **MANAGED_BY}},
        "spec": {
            "selector": {ADAPTER_LABEL: name},
            "ports": [{"name": "http", "port": 80, "targetPort": ADAPTER_PORT, "protocol": "TCP"}],
        },
    }


def token_path(audience: str) -> str:
    """Where a pod finds its token for `audience` (the control core's Oidc.token_file)."""
    return f"{TOKENS_DIR}/{_digest(audience)}/token"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_identity(
    deployment: dict[str, Any], service_account: str | None, audiences: Iterable[str], jwks: bool
) -> dict[str, Any]:
    """The Deployment with its pods' identity: running as `service_account` (when given), a
    projected token at token_path(audience) for each audience, and with `jwks` the issuer's keys
    at JWKS_FILE. Pure: a new dict."""
    template = deployment["spec"]["template"]
    pod = dict(template["spec"])
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for audience in sorted(set(audiences)):
        name = f"knit-token-{_digest(audience)}"
        token = {"audience": audience, "expirationSeconds": TOKEN_SECONDS, "path": "token"}
        volumes.append({"name": name, "projected": {"sources": [{"serviceAccountToken": token}]}})
        mounts.append({"name": name, "mountPath": token_path(audience).rpartition("/")[0], "readOnly": True})
    if jwks:
        volumes.append({"name": "knit-oidc", "configMap": {"name": OIDC_CONFIG_MAP}})
        mounts.append({"name": "knit-oidc", "mountPath": OIDC_DIR, "readOnly": True})
    if service_account:
        pod["serviceAccountName"] = service_account
    if volumes:
        pod["volumes"] = volumes
        pod["containers"] = [{**pod["containers"][0], "volumeMounts": mounts}, *pod["containers"][1:]]
    return {**deployment, "spec": {**deployment["spec"], "template": {**template, "spec": pod}}}


def jwks_config_map(namespace: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The issuer's public keys where a namespace's pods mount them."""
    metadata = {"name": OIDC_CONFIG_MAP, "namespace": namespace, "labels": dict(MANAGED_BY)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"jwks.json": json.dumps(jwks)}}


def service_account(name: str, namespace: str, owner: Owner | None) -> dict[str, Any]:
    """A ServiceAccount a pod runs as (an adapter's is owned by its resource)."""
    metadata = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": owned(metadata, owner) if owner else metadata}


def derived(objects: list[dict[str, Any]], owner: Owner) -> list[dict[str, Any]]:
    """The Configuration, Revisions and Route of knit.control.render, owned by their Service;
    their status is written separately (the status subresource)."""
    result = []
    for obj in objects:
        metadata = {k: v for k, v in obj["metadata"].items() if k != "generation"}
        labels = {**metadata.get("labels", {}), render.SERVICE_LABEL: owner.name, **MANAGED_BY}
        result.append(
            {
                **{k: v for k, v in obj.items() if k != "status"},
                "metadata": owned({**metadata, "labels": labels}, owner),
            }
        )
    return result
