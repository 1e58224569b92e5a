"""A Kubernetes API as tests and benchmarks see it: objects as plain dicts (the official client's
dynamic client), and waiting until something is so. The bare API server's tests and the kind
suite (knit.testing.kind) both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

SERVING = "serving.knit.dev/v1"


class Cluster:
    def __init__(self, api_client: client.ApiClient, namespace: str = "default", timeout: float = 60.0,
                 poll: float = 0.1) -> None:  # fmt: skip
        self.api_client = api_client
        self.dynamic = dynamic.DynamicClient(api_client)
        self.namespace = namespace  # where objects are looked for when no namespace is given
        self.timeout = timeout  # what `wait` waits by default: only a hang reaches it
        self.poll = poll

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Server-side apply, as `kubectl apply --server-side` (options: dry_run, field_validation)."""
        resource = self.resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        return self.dynamic.server_side_apply(
            resource, body=obj, namespace=namespace, field_manager="test", force_conflicts=True, **options
        ).to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        resource = self.resource(api_version, kind)
        try:
            found = resource.get(name=name, namespace=(namespace or self.namespace) if resource.namespaced else None)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found.to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        self.resource(api_version, kind).delete(name=name, namespace=namespace or self.namespace)

    def ready(self, kind: str, name: str, namespace: str | None = None) -> dict[str, str] | None:
        """A knit object's Ready condition, None while it has none."""
        obj = self.get(SERVING, kind, name, namespace)
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), None)

    def wait(self, what: str, check: Callable[[], Any], timeout: float | None = None) -> Any:
        """Until check() returns something truthy; that value (AssertionError naming `what` after `timeout`)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}")
            time.sleep(self.poll)
        return value
