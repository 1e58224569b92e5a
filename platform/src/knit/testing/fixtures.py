"""pytest fixtures for code that runs on knit: a real Kafka broker for the test session,
a real HTTP server that records the CloudEvents sent to it, a token issuer, and a real
Kubernetes API server (etcd, kube-apiserver, kube-controller-manager; no nodes).

Enable with `pytest_plugins = ["knit.testing.fixtures"]` in a conftest.py. The broker is
the embedded one unless KAFKA_BOOTSTRAP_SERVERS names a cluster (e.g. a real Apache Kafka).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, wait_until_reachable
from knit.testing.harness import EventSink
from knit.testing.identity import TestIssuer
from knit.testing.kube_api import KubeApi

KUBE_BIN_ENV = "KNIT_KUBE_BIN"  # a folder with etcd, kube-apiserver and kube-controller-manager
# In this repository (an editable install), the script that builds them from Go modules, cached.
KUBE_BUILD = Path(__file__).resolve().parents[3] / "kube" / "build.sh"


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
