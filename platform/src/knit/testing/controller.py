"""`knit controller` as the bare API server's tests run it: a process with a kubeconfig, as
people run it outside a cluster, holding manifests/platform/controller.yaml's ServiceAccount
token (so RBAC allows it only what that manifest grants). Fixtures: knit.testing.fixtures.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kubernetes import client

from knit.host import HOST, free_port
from knit.runtimes.kubernetes.runtime import SYSTEM_NAMESPACE
from knit.testing.cluster import SERVING, Cluster


@dataclass
class ControllerProcess:
    identity: str
    kubeconfig: Path
    folder: Path
    kafka_bootstrap: str = ""
    port: int = field(default_factory=free_port)  # its gateway's
    health: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"{self.identity}.log"

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knit.cli", "controller", "--kubeconfig", str(self.kubeconfig),
                 "--gateway-port", str(self.port), "--health-port", str(self.health), "--identity", self.identity,
                 "--activation-timeout", "2", "--kafka-bootstrap", self.kafka_bootstrap],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> int | None:
        """What its /readyz answers (200 once it leads and knows every route), None while it is not up."""
        try:
            return requests.get(f"http://{HOST}:{self.health}/readyz", timeout=5).status_code
        except requests.ConnectionError:
            return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def wait_for_log(self, cluster: Cluster, line: str) -> None:
        cluster.wait(f"{self.identity} logs {line!r}", lambda: line in self.log.read_text())


def service_account_token(cluster: Cluster) -> str:
    """A token of knit-system/knit-controller, as its pod would have (TokenRequest)."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    core = client.CoreV1Api(cluster.api_client)
    return core.create_namespaced_service_account_token("knit-controller", SYSTEM_NAMESPACE, request).status.token


def lease_holder(cluster: Cluster) -> str | None:
    lease = cluster.get("coordination.k8s.io/v1", "Lease", "knit-controller", SYSTEM_NAMESPACE)
    return (lease or {}).get("spec", {}).get("holderIdentity")


def service_manifest(name: str, namespace: str, image: str = "hello:1", **template_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": SERVING,
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {"containers": [{"image": image, "ports": [{"containerPort": 8080}]}], **template_spec}
            }
        },
    }
