"""What the `knit` commands ask of a running knit, and how they ask a `knit dev`.

`Control` is the interface the commands use, as `kn` uses its serving client: admission's
context, apply, delete, Services, traffic edits, eventing objects. `LocalControl` is it for
`knit dev`: JSON over HTTP on 127.0.0.1, with the token `knit dev` left in the user's token
file (or KNIT_CONTROL_TOKEN). `ClusterControl` is it for a Kubernetes cluster with knit
installed: the knit objects in its API and their status, through a kubeconfig."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from knit.admission import Context, load_manifests
from knit.control_token import CONTROL_URL_ENV, DEFAULT_PORT, token_for
from knit.resources.model import KINDS, TrafficTarget, served_api_version
from knit.serving.traffic import edit_traffic

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


class ControlError(RuntimeError):
    """The control API refused or could not be reached; `problems` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def control_url(given: str | None) -> str:
    return (given or os.environ.get(CONTROL_URL_ENV) or DEFAULT_URL).rstrip("/")


def call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    token = token_for(base)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            answer = json.loads(error.read())
            problems = answer.get("problems") or [answer["error"]["message"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            problems = [f"{base}{path} answered {error.code}"]
        raise ControlError(problems) from None
    except (urllib.error.URLError, OSError) as error:
        raise ControlError(
            [
                f"no knit dev answered at {base} ({getattr(error, 'reason', error)}); start one with "
                f"`knit dev -f <manifests>`, or point {CONTROL_URL_ENV} / --control at it"
            ]
        ) from None


@runtime_checkable
class Control(Protocol):
    """A running knit, as the commands see it. Every method raises ControlError when refused."""

    def admission_context(self) -> Context: ...
    def apply(self, paths: Sequence[Path]) -> list[str]: ...
    def delete(self, objects: Sequence[str]) -> list[str]: ...  # "KIND/NAMESPACE/NAME"
    def services(self) -> list[dict[str, Any]]: ...
    def service(self, namespace: str, name: str) -> dict[str, Any]: ...
    def edit_traffic(
        self, namespace: str, name: str, traffic: list[str], tags: list[str], untags: list[str]
    ) -> dict[str, Any]: ...
    def eventing(self) -> list[dict[str, Any]]: ...


class LocalControl:
    """A `knit dev`'s control API at `url` (default: $KNIT_CONTROL_URL or 127.0.0.1:8081)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = control_url(url)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return call(self.url, method, path, body)

    def admission_context(self) -> Context:
        answer = self._call("GET", "/admission")
        return Context(frozenset(tuple(key) for key in answer["known"]), answer["autoscaler"])

    def apply(self, paths: Sequence[Path]) -> list[str]:
        return self._call("POST", "/apply", {"paths": [str(path.resolve()) for path in paths]})["changes"]

    def delete(self, objects: Sequence[str]) -> list[str]:
        return self._call("POST", "/delete", {"objects": list(objects)})["changes"]

    def services(self) -> list[dict[str, Any]]:
        return self._call("GET", "/services")["services"]

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/services/{namespace}/{name}")

    def edit_traffic(
        self, namespace: str, name: str, traffic: list[str], tags: list[str], untags: list[str]
    ) -> dict[str, Any]:
        body = {"traffic": traffic, "tags": tags, "untags": untags}
        return self._call("POST", f"/services/{namespace}/{name}/traffic", body)

    def eventing(self) -> list[dict[str, Any]]:
        return self._call("GET", "/eventing")["resources"]


class ClusterControl:
    """knit on a Kubernetes cluster, through a kubeconfig: the knit objects in its API, and the
    status `knit controller` writes on them. The same answers as LocalControl's, so the commands
    print the same; only what a cluster does not show differs (pods are not listed as instances)."""

    def __init__(self, kubeconfig: str | None, context: str | None = None) -> None:
        from kubernetes import config, dynamic  # imported here: it takes a while, and only this needs it

        self.dynamic = dynamic.DynamicClient(config.new_client_from_config(kubeconfig, context))

    def _resource(self, kind: str, api_version: str | None = None) -> Any:
        return self.dynamic.resources.get(api_version=api_version or _API_VERSIONS[kind], kind=kind)

    def _call(self, what: str, call: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return call()
        except ApiException as error:
            try:
                message = json.loads(error.body)["message"]
            except (TypeError, ValueError, KeyError):
                message = error.reason
            raise ControlError([f"{what}: {message} (HTTP {error.status})"]) from None
        except OSError as error:
            raise ControlError([f"{what}: the cluster's API server did not answer: {error}"]) from None

    def _items(self, kind: str, api_version: str | None = None, **selectors: Any) -> list[dict[str, Any]]:
        listing = self._call(f"listing {kind}s", lambda: self._resource(kind, api_version).get(**selectors))
        return listing.to_dict()["items"]

    def admission_context(self) -> Context:
        known = frozenset(
            (kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) for kind in _API_VERSIONS
            for obj in self._items(kind)
        )  # fmt: skip
        return Context(known, {})

    def apply(self, paths: Sequence[Path]) -> list[str]:
        changes = []
        for resource in load_manifests(paths, self.admission_context()).resources:
            body = resource.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            body["apiVersion"] = _API_VERSIONS.get(resource.kind, "v1")
            self._call(resource.describe(), lambda body=body, r=resource: self.dynamic.server_side_apply(
                self._resource(r.kind, body["apiVersion"]), body=body, namespace=r.namespace,
                field_manager="knit", force_conflicts=True))  # fmt: skip
            changes.append(f"{resource.describe()}: applied")
        return changes

    def delete(self, objects: Sequence[str]) -> list[str]:
        changes = []
        for entry in objects:
            kind, namespace, name = entry.split("/")
            self._call(f"{kind} {namespace}/{name}",
                       lambda k=kind, ns=namespace, n=name: self._resource(k).delete(name=n, namespace=ns))  # fmt: skip
            changes.append(f"{kind} {namespace}/{name}: deleted")
        return changes

    def services(self) -> list[dict[str, Any]]:
        return [self._describe(obj) for obj in sorted(self._items("Service"), key=_identity_of)]

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self._call(f"Service {namespace}/{name}",
                         lambda: self._resource("Service").get(name=name, namespace=namespace)).to_dict()  # fmt: skip
        return self._describe(obj)

    def _describe(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A Service as `knit service describe` shows it, from its status and its Revisions'."""
        metadata, status = obj["metadata"], obj.get("status") or {}
        if "conditions" not in status:
            raise ControlError([f"Service {metadata['namespace']}/{metadata['name']} has no status yet: "
                                "is knit controller running? (kubectl -n knit-system get pods)"])  # fmt: skip
        # A merge patch drops fields written as null (a cluster-local URL, no ready Revision yet),
        # and a Service admission refused has conditions only: what LocalControl gives for them.
        status = {"url": None, "latestCreatedRevisionName": None, "latestReadyRevisionName": None,
                  "address": {"url": "", "audience": ""}, "traffic": [], **status}  # fmt: skip
        traffic = status.get("traffic") or []
        revisions = self._items("Revision", _API_VERSIONS["Service"], namespace=metadata["namespace"],
                                label_selector=f"serving.knit.dev/service={metadata['name']}")  # fmt: skip
        described = []
        for revision in sorted(revisions, key=lambda r: r["metadata"]["name"], reverse=True):
            name = revision["metadata"]["name"]
            revision_status = revision.get("status") or {}
            ready = next((c for c in revision_status.get("conditions", []) if c["type"] == "Ready"), {})
            described.append({
                "name": name,
                "generation": int(revision["metadata"]["labels"].get("serving.knit.dev/configurationGeneration", 0)),
                "ready": {"True": True, "False": False}.get(ready.get("status", "")),
                "reason": ready.get("reason", ""),
                "message": ready.get("message", ""),
                "percent": sum(t["percent"] for t in traffic if t.get("revisionName") == name),
                "tags": sorted(t["tag"] for t in traffic if t.get("revisionName") == name and t.get("tag")),
                "latest": name == status.get("latestReadyRevisionName"),
                "actual_scale": revision_status.get("actualReplicas", 0),
                "desired_scale": revision_status.get("desiredReplicas", 0),
                "container_concurrency": revision.get("spec", {}).get("containerConcurrency", 0),
                "instances": [],
            })  # fmt: skip
        return {"name": metadata["name"], "namespace": metadata["namespace"], "status": status,
                "revisions": described}  # fmt: skip

    def edit_traffic(
        self, namespace: str, name: str, traffic: list[str], tags: list[str], untags: list[str]
    ) -> dict[str, Any]:
        obj = self._call(f"Service {namespace}/{name}",
                         lambda: self._resource("Service").get(name=name, namespace=namespace)).to_dict()  # fmt: skip
        current = [TrafficTarget.model_validate(t) for t in obj["spec"].get("traffic") or []]
        try:
            edited = edit_traffic(current, traffic, tags, untags)
        except ValueError as error:
            raise ControlError([str(error)]) from None
        body = {"spec": {"traffic": [t.model_dump(by_alias=True, exclude_none=True) for t in edited]}}
        patch = "application/merge-patch+json"
        changed = self._call(f"Service {namespace}/{name}", lambda: self._resource("Service").patch(
            body=body, name=name, namespace=namespace, content_type=patch)).to_dict()  # fmt: skip
        generation = changed["metadata"]["generation"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the controller writes status for the new generation
            described = self.service(namespace, name)
            if described["status"].get("observedGeneration") == generation:
                return described
            time.sleep(0.2)
        raise ControlError([f"Service {namespace}/{name} changed, but knit controller has not reconciled it "
                            "within 30s: is it running? (kubectl -n knit-system get pods)"])  # fmt: skip

    def eventing(self) -> list[dict[str, Any]]:
        rows = []
        for kind in ("Broker", "Trigger", "KafkaSource", "PingSource", "SinkBinding"):
            for obj in self._items(kind):
                conditions = (obj.get("status") or {}).get("conditions") or []
                ready = next((c for c in conditions if c["type"] == "Ready"),
                             {"type": "Ready", "status": "Unknown", "reason": "NotReconciled",
                              "message": "knit controller has not written its status yet: is it running?"})  # fmt: skip
                rows.append({"kind": kind, "namespace": obj["metadata"]["namespace"],
                             "name": obj["metadata"]["name"], "conditions": conditions, "ready": ready})  # fmt: skip
        return rows


# The knit kinds people apply, as the cluster serves them (the CRDs' storage version).
_API_VERSIONS = {name: served_api_version(kind) for name, kind in KINDS.items() if kind.GROUP}


def _identity_of(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]
