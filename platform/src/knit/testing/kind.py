"""The kind cluster as tests and benchmarks see it (`make kind-up kind-platform` first): objects as
dicts through the kubeconfig's context kind-knit, pods of a Revision, and waiting for things.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

CONTEXT = "kind-knit"
NAMESPACE = "kind-test"
SERVING = "serving.knit.dev/v1"
GATEWAY = "http://127.0.0.1:8080"
WAIT = 180.0  # seconds: pods start in a few; only a hang reaches this


def hello(image_tag: str = "dev", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """knit.testing.sample_app in the knit image, scaled to zero 6 s after its last request."""
    return {
        "apiVersion": SERVING,
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": NAMESPACE},
        "spec": {"template": {
            "metadata": {"annotations": {"autoscaling.knit.dev/window": "6s", **(annotations or {})}},
            "spec": {"containers": [{
                "image": f"knit/platform:{image_tag}",
                "command": ["gunicorn"],
                "args": ["-k", "gthread", "--threads", "8", "-b", "$(HOST):$(PORT)", "knit.testing.sample_app:app"],
                "readinessProbe": {"httpGet": {"path": "/readyz"}},
            }]},
        }},
    }  # fmt: skip


class Kind:
    def __init__(self) -> None:
        self.api_client = config.new_client_from_config(context=CONTEXT)
        self.dynamic = dynamic.DynamicClient(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        return self.dynamic.server_side_apply(
            resource, body=obj, namespace=namespace, field_manager="test", force_conflicts=True
        ).to_dict()

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            return resource.get(name=name, namespace=NAMESPACE).to_dict()
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def pods(self, revision: str) -> list[str]:
        """Running pods of a Revision (not those being deleted)."""
        listed = self.core.list_namespaced_pod(NAMESPACE, label_selector=f"serving.knit.dev/revision={revision}")
        return [p.metadata.name for p in listed.items if p.metadata.deletion_timestamp is None]

    def wait(self, what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}")
            time.sleep(0.5)
        return value

    def controller_log(self) -> str:
        pods = self.core.list_namespaced_pod("knit-system", label_selector="app.kubernetes.io/name=knit-controller")
        running = [p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None]
        return "".join(self.core.read_namespaced_pod_log(name, "knit-system") for name in running)
