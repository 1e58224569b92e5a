"""knit on a real kind cluster (`make test-kind`): the controller and gateway installed from
manifests/platform/, a Service whose pods really run, reached at its public URL on
http://127.0.0.1:8080/ exactly as with `knit dev`, scaled to zero by the autoscaler and back
by a request. Needs the cluster and images: `make kind-up kind-platform` (make test-kind runs them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kubernetes.client.exceptions import ApiException

from knit.testing.kind import GATEWAY, NAMESPACE, SERVING, Kind, hello


@pytest.fixture(scope="module")
def kind() -> Iterator[Kind]:
    kind = Kind()
    try:
        kind.core.delete_namespace(NAMESPACE)
        kind.wait(f"namespace {NAMESPACE} gone", lambda: NAMESPACE not in _namespaces(kind))
    except ApiException as error:
        if error.status != 404:
            raise
    kind.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    yield kind


def _namespaces(kind: Kind) -> list[str]:
    return [n.metadata.name for n in kind.core.list_namespace().items]


def get(host: str) -> requests.Response:
    return requests.get(f"{GATEWAY}/", headers={"Host": host}, timeout=60)


def test_a_service_runs_as_pods_answers_at_its_url_and_scales_to_zero_and_back(kind: Kind) -> None:
    kind.apply(hello())
    service = kind.wait("hello Ready", lambda: _ready(kind, "hello"))
    assert service["status"]["url"] == f"http://hello.{NAMESPACE}.localhost:8080"
    answer = get(f"hello.{NAMESPACE}.localhost")
    assert answer.status_code == 200 and answer.json()["revision"] == "hello-00001"
    assert len(kind.pods("hello-00001")) == 1

    # Idle: the autoscaler takes it to zero (6 s window, then Knative's 30 s grace period).
    kind.wait("hello at zero pods", lambda: not kind.pods("hello-00001"))
    deployment = kind.get("apps/v1", "Deployment", "hello-00001-deployment")
    assert deployment["spec"]["replicas"] == 0
    # A request at zero waits in the activator while a pod starts, then gets its answer.
    started = time.monotonic()
    answer = get(f"hello.{NAMESPACE}.localhost")
    print(f"cold start on kind: {time.monotonic() - started:.2f} s")
    assert answer.status_code == 200 and answer.json()["revision"] == "hello-00001"
    assert len(kind.pods("hello-00001")) == 1


def test_a_new_template_rolls_out_as_a_new_revision(kind: Kind) -> None:
    kind.apply(hello(annotations={"autoscaling.knit.dev/min-scale": "1"}))
    kind.wait("hello-00002 ready", lambda: _ready(kind, "hello", latest="hello-00002"))
    answers = {get(f"hello.{NAMESPACE}.localhost").json()["revision"] for _ in range(5)}
    assert answers == {"hello-00002"}
    # The old Revision keeps its Deployment (Revisions are immutable and stay), at zero.
    kind.wait("hello-00001 at zero", lambda: not kind.pods("hello-00001"))


def test_deleting_the_service_removes_its_pods_and_its_host(kind: Kind) -> None:
    resource = kind.dynamic.resources.get(api_version=SERVING, kind="Service")
    resource.delete(name="hello", namespace=NAMESPACE)
    kind.wait("hello's pods gone", lambda: not kind.pods("hello-00002"))
    kind.wait("no route for hello", lambda: get(f"hello.{NAMESPACE}.localhost").status_code == 404)


def _ready(kind: Kind, name: str, latest: str | None = None) -> dict[str, Any] | None:
    service = kind.get(SERVING, "Service", name) or {}
    status = service.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    if ready.get("status") != "True" or (latest and status.get("latestReadyRevisionName") != latest):
        return None
    return service
