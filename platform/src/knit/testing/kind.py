"""The kind cluster as tests and benchmarks see it (`make kind-up kind-platform` first): objects as
dicts through the kubeconfig's context kind-knit, pods of a Revision, and waiting for things.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from knit.testing.cluster import SERVING, Cluster

CONTEXT = "kind-knit"
NAMESPACE = "kind-test"
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


class Kind(Cluster):
    """The kind cluster through the kubeconfig's context kind-knit; objects in NAMESPACE by default."""

    def __init__(self) -> None:
        super().__init__(config.new_client_from_config(context=CONTEXT), NAMESPACE, timeout=WAIT, poll=0.5)
        self.core = client.CoreV1Api(self.api_client)

    def pods(self, revision: str, terminating: bool = False, namespace: str = NAMESPACE) -> list[str]:
        """Running pods of a Revision; with `terminating`, also those being deleted."""
        listed = self.core.list_namespaced_pod(namespace, label_selector=f"serving.knit.dev/revision={revision}")
        return [p.metadata.name for p in listed.items if terminating or p.metadata.deletion_timestamp is None]

    def controller_log(self) -> str:
        pods = self.core.list_namespaced_pod("knit-system", label_selector="app.kubernetes.io/name=knit-controller")
        running = [p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None]
        return "".join(self.core.read_namespaced_pod_log(name, "knit-system") for name in running)
