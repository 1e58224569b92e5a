"""pytest fixtures for code that runs on knit: a real Kafka broker for the test session,
a real HTTP server that records the CloudEvents sent to it, a token issuer, and a real
Kubernetes API server (etcd, kube-apiserver, kube-controller-manager; no nodes) with knit's
CRDs and a `knit controller` on it.

Enable with `pytest_plugins = ["knit.testing.fixtures"]` in a conftest.py. The broker is
the embedded one unless KAFKA_BOOTSTRAP_SERVERS names a cluster (e.g. a real Apache Kafka).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, wait_until_reachable
from knit.testing.cluster import Cluster
from knit.testing.harness import HANG, EventSink
from knit.testing.identity import TestIssuer
from knit.testing.kube_api import KubeApi

if TYPE_CHECKING:
    from knit.testing.controller import ControllerProcess

KUBE_BIN_ENV = "KNIT_KUBE_BIN"  # a folder with etcd, kube-apiserver and kube-controller-manager
# In this repository (an editable install), the script that builds them from Go modules, cached.
KUBE_BUILD = Path(__file__).resolve().parents[3] / "kube" / "build.sh"
CONTROLLER_MANIFEST = Path(__file__).resolve().parents[4] / "manifests" / "platform" / "controller.yaml"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a running Kafka broker, for the whole session."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        wait_until_reachable(external, time.monotonic() + 10)
        yield external
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("kafka") / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def event_sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


@pytest.fixture(scope="session")
def knit_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knit clone with the working tree's `knit new` templates committed, for `knit new --from`."""
    from knit.testing.templates import snapshot

    return snapshot(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def oidc_issuer(tmp_path: Path) -> TestIssuer:
    """A token issuer with its JWKS in a file, as the local runtime has it."""
    return TestIssuer(tmp_path / "oidc")


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A real Kubernetes API server for the whole session: $KNIT_KUBE_BIN's binaries, else
    those platform/kube/build.sh builds (minutes the first time, cached after)."""
    if os.environ.get(KUBE_BIN_ENV):
        bin_dir = Path(os.environ[KUBE_BIN_ENV])
    else:
        built = subprocess.run([str(KUBE_BUILD), "etcd", "kube-apiserver", "kube-controller-manager"],
                               check=True, stdout=subprocess.PIPE, text=True)  # fmt: skip
        bin_dir = Path(built.stdout.strip().splitlines()[-1])
    api = KubeApi(bin_dir, tmp_path_factory.mktemp("kube-api"))
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def cluster(kube_api: KubeApi) -> Cluster:
    """The API server with knit's CRDs established, as a Cluster (knit.testing.cluster)."""
    from kubernetes import config, dynamic

    from knit.resources.crds import all_crds

    cluster = Cluster(config.new_client_from_config(str(kube_api.kubeconfig)), timeout=HANG)
    for crd in all_crds():
        cluster.apply(crd)
    for crd in all_crds():
        cluster.wait(
            f"CRD {crd['metadata']['name']} established",
            lambda name=crd["metadata"]["name"]: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {})
                .get("status", {})
                .get("conditions", [])
            ),
        )
    cluster.dynamic = dynamic.DynamicClient(cluster.api_client)  # discovery again, with the new kinds
    return cluster


@pytest.fixture(scope="module")
def controller_kubeconfig(kube_api: KubeApi, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manifests/platform/controller.yaml installed, and a kubeconfig with its ServiceAccount's token:
    RBAC allows a controller that uses it only what that manifest grants."""
    from knit.testing.controller import service_account_token

    for doc in yaml.safe_load_all(CONTROLLER_MANIFEST.read_text()):
        cluster.apply(doc)
    kubeconfig = tmp_path_factory.mktemp("controller") / "kubeconfig"
    kubeconfig.write_text(kube_api.kubeconfig.read_text().replace(kube_api.token, service_account_token(cluster)))
    return kubeconfig


@pytest.fixture(scope="module")
def controller(cluster: Cluster, controller_kubeconfig: Path, kafka_bootstrap: str) -> Iterator[ControllerProcess]:
    """`knit controller` leading, ready, with the session's Kafka; its log's tail printed after."""
    from knit.testing.controller import ControllerProcess, lease_holder

    running = ControllerProcess("test-controller", controller_kubeconfig, controller_kubeconfig.parent, kafka_bootstrap)
    running.start()
    try:
        cluster.wait("the controller ready (/readyz)", lambda: running.ready() == 200)
        assert lease_holder(cluster) == "test-controller"
        yield running
    finally:
        running.stop()
        print(running.log.read_text()[-20000:])
    assert "Forbidden" not in running.log.read_text(), "the controller needs more than its ClusterRole grants"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A namespace named after the test."""
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
