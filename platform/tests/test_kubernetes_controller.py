"""The Kubernetes runtime against a real API server (etcd, kube-apiserver and
kube-controller-manager: garbage collection, Deployments → ReplicaSets; no nodes, so no pod
runs). `knit controller` runs as people run it outside a cluster, with a kubeconfig
(knit.testing.controller; its fixtures are in knit.testing.fixtures).

Where a test needs ready pods, it writes the EndpointSlice that Kubernetes' EndpointSlice
controller would write for them (addresses from TEST-NET-2, 198.51.100.0/24). No request
is sent to them: the API server refuses loopback addresses there, and tests send traffic to
127.0.0.1 only. Requests answered by real pods are the kind suite's; here the gateway is
seen routing by host to a Service with no ready Revision (its 503 names the Revision).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml
from kubernetes.client.exceptions import ApiException

from knit.host import HOST
from knit.runtimes.kubernetes.runtime import SYSTEM_NAMESPACE
from knit.testing.cluster import SERVING, Cluster
from knit.testing.controller import ControllerProcess as Controller
from knit.testing.controller import lease_holder, service_manifest
from knit.testing.kube_api import KubeApi

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


# --- CRDs ----------------------------------------------------------------------------------------


def test_the_checked_in_crds_are_what_knit_crds_prints() -> None:
    printed = subprocess.run([sys.executable, "-m", "knit.cli", "crds"], check=True, capture_output=True, text=True)
    assert (REPO / "manifests/platform/crds.yaml").read_text() == printed.stdout, "run: make crds"


def test_every_custom_resource_of_the_app_is_accepted_by_its_crd(cluster: Cluster) -> None:
    documents = [
        doc for file in sorted((REPO / "manifests/app").glob("*.yaml")) for doc in yaml.safe_load_all(file.read_text())
    ]
    custom = [doc for doc in documents if doc and doc["apiVersion"] != "v1"]
    assert {doc["kind"] for doc in custom} >= {"Service", "KafkaSource", "SinkBinding"}
    for doc in custom:
        obj = {**doc, "metadata": {**doc["metadata"], "namespace": "default"}}
        cluster.apply(obj, dry_run="All", field_validation="Strict")


def test_a_crd_refuses_what_the_model_refuses(cluster: Cluster) -> None:
    wrong = service_manifest("wrong", "default")
    wrong["spec"]["template"]["spec"]["containerConcurrency"] = 5000  # the model: at most 1000
    with pytest.raises(ApiException) as refused:
        cluster.apply(wrong, dry_run="All")
    assert refused.value.status == 422
    assert "containerConcurrency" in refused.value.body
    typo = service_manifest("typo", "default")
    typo["spec"]["template"]["spec"]["containres"] = []
    with pytest.raises(ApiException) as unknown:
        cluster.apply(typo, dry_run="All", field_validation="Strict")
    assert "containres" in unknown.value.body


# --- the controller ----------------------------------------------------------------------------


def test_a_service_gets_its_revision_deployment_and_route_owned_by_it(
    cluster: Cluster, controller: Controller, namespace: str, kube_api: KubeApi
) -> None:
    created = cluster.apply(service_manifest("hello", namespace))
    uid = created["metadata"]["uid"]
    revision = cluster.wait("Revision hello-00001", lambda: cluster.get(SERVING, "Revision", "hello-00001", namespace))
    for kind in ("Configuration", "Route"):
        derived = cluster.wait(f"{kind} hello", lambda k=kind: cluster.get(SERVING, k, "hello", namespace))
        assert [o["uid"] for o in derived["metadata"]["ownerReferences"]] == [uid]
    assert [o["uid"] for o in revision["metadata"]["ownerReferences"]] == [uid]
    deployment = cluster.wait(
        "its Deployment", lambda: cluster.get("apps/v1", "Deployment", "hello-00001-deployment", namespace)
    )
    assert [o["uid"] for o in deployment["metadata"]["ownerReferences"]] == [revision["metadata"]["uid"]]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "hello:1"
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["K_REVISION"] == "hello-00001" and env["PORT"] == "8080"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Knative's initial scale: one pod asked for at once.
    cluster.wait(
        "the autoscaler asks for 1 replica",
        lambda: cluster.get("apps/v1", "Deployment", "hello-00001-deployment", namespace)["spec"]["replicas"] == 1,
    )
    address = cluster.get("v1", "Service", "hello", namespace)
    assert address["spec"]["externalName"] == f"knit-gateway.{SYSTEM_NAMESPACE}.svc.cluster.local"
    private = cluster.get("v1", "Service", "hello-00001", namespace)
    assert private["spec"]["selector"] == {"serving.knit.dev/revision": "hello-00001"}
    # As `kubectl get revisions` shows them: the CRD's printer columns, filled.
    table = requests.get(
        f"{kube_api.url}/apis/serving.knit.dev/v1/namespaces/{namespace}/revisions",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io", "Authorization": f"Bearer {kube_api.token}"},
        verify=str(kube_api.ca_file),
        timeout=10,
    ).json()
    columns = [column["name"] for column in table["columnDefinitions"]]
    row = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    assert (row["Name"], row["Config Name"], row["Generation"]) == ("hello-00001", "hello", "1")


def test_status_says_what_is_missing_until_a_pod_is_ready(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    created = cluster.apply(service_manifest("web", namespace))

    def observed() -> dict[str, Any] | None:
        status = (cluster.get(SERVING, "Service", "web", namespace) or {}).get("status") or {}
        return status if status.get("observedGeneration") == created["metadata"]["generation"] else None

    status = cluster.wait("status for generation 1", observed)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown"
    assert status["url"] == f"http://web.{namespace}.localhost:8080"
    assert status["latestCreatedRevisionName"] == "web-00001"
    assert status["address"]["url"] == f"http://web.{namespace}.svc.cluster.local"
    # The gateway routes its public host and its cluster-local name (as other pods reach it,
    # through the ExternalName Service) to web, whose only Revision is not ready yet.
    for host in (f"web.{namespace}.localhost:8080", f"web.{namespace}.svc.cluster.local"):
        code, body = request(controller.port, host)
        assert code == 503, (host, code, body)
        assert "no ready revision yet: Revision 'web-00001' is not ready yet" in body

    cluster.apply(endpoint_slice("web-00001", namespace, "198.51.100.1"))
    cluster.wait(
        "Service web Ready", lambda: (cluster.ready("Service", "web", namespace) or {}).get("status") == "True"
    )
    # Each object's status is its own write: the Revision's may come a moment after the Service's.
    cluster.wait(
        "Revision web-00001 Ready", lambda: cluster.ready("Revision", "web-00001", namespace)["status"] == "True"
    )
    revision = cluster.get(SERVING, "Revision", "web-00001", namespace)
    assert revision["status"]["actualReplicas"] == 1
    # The autoscaler's view, as Prometheus reads it from the health port.
    line = 'knit_autoscaler_actual_scale{revision="web-00001",service="web"} 1.0'
    cluster.wait(
        "the metric", lambda: line in requests.get(f"http://{HOST}:{controller.health}/metrics", timeout=10).text
    )


def test_a_template_change_makes_a_new_revision_and_moves_traffic_once_it_is_ready(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    cluster.apply(service_manifest("app", namespace, image="app:1"))
    cluster.wait("Revision app-00001", lambda: cluster.get(SERVING, "Revision", "app-00001", namespace))
    cluster.apply(endpoint_slice("app-00001", namespace, "198.51.100.2"))
    cluster.wait("app ready", lambda: (cluster.ready("Service", "app", namespace) or {}).get("status") == "True")
    changed = cluster.apply(service_manifest("app", namespace, image="app:2"))
    assert changed["metadata"]["generation"] == 2
    deployment = cluster.wait(
        "Deployment of app-00002", lambda: cluster.get("apps/v1", "Deployment", "app-00002-deployment", namespace)
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    # Until app-00002 is ready, traffic stays on app-00001 (Knative's latest *ready* Revision).
    status = cluster.wait(
        "status of generation 2",
        lambda: (s := cluster.get(SERVING, "Service", "app", namespace)["status"])["observedGeneration"] == 2 and s,
    )
    assert [t["revisionName"] for t in status["traffic"]] == ["app-00001"]
    assert status["latestCreatedRevisionName"] == "app-00002"
    cluster.apply(endpoint_slice("app-00002", namespace, "198.51.100.3"))

    def moved() -> bool:
        route = cluster.get(SERVING, "Route", "app", namespace)
        traffic = (route.get("status") or {}).get("traffic") or []
        return [t["revisionName"] for t in traffic] == ["app-00002"]

    cluster.wait("the Route's status names app-00002", moved)
    service = cluster.get(SERVING, "Service", "app", namespace)
    assert service["status"]["observedGeneration"] == 2
    assert service["status"]["latestReadyRevisionName"] == "app-00002"


def test_a_service_admission_refuses_is_not_ready_with_the_same_message(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    wrong = service_manifest("bad", namespace)
    wrong["spec"]["template"]["metadata"] = {"annotations": {"autoscaling.knit.dev/target": "-1"}}
    cluster.apply(wrong)
    ready = cluster.wait("bad refused", lambda: cluster.ready("Service", "bad", namespace))
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "autoscaling.knit.dev/target" in ready["message"]
    assert cluster.get(SERVING, "Revision", "bad-00001", namespace) is None
    # Fixed, it runs.
    cluster.apply(service_manifest("bad", namespace))
    cluster.wait("bad's Revision", lambda: cluster.get(SERVING, "Revision", "bad-00001", namespace))
    cluster.wait("bad no longer refused", lambda: cluster.ready("Service", "bad", namespace)["status"] == "Unknown")
    assert cluster.get(SERVING, "Service", "bad", namespace)["status"]["observedGeneration"] == 2


def test_config_autoscaler_in_knit_system_sets_the_autoscalers_defaults(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": SYSTEM_NAMESPACE},
        "data": {"initial-scale": "2"},
    }
    cluster.apply(config_map)
    try:
        controller.wait_for_log(cluster, 'config-autoscaler applied: {"initial-scale": "2"}')
        cluster.apply(service_manifest("two", namespace))
        cluster.wait(
            "two-00001 asked for 2 pods (initial-scale 2)",
            lambda: (
                (cluster.get("apps/v1", "Deployment", "two-00001-deployment", namespace) or {})
                .get("spec", {})
                .get("replicas")
                == 2
            ),
        )
        # A wrong value changes nothing, and says why in the controller's log.
        cluster.apply({**config_map, "data": {"initial-scale": "-1"}})
        controller.wait_for_log(cluster, "config-autoscaler not applied")
    finally:
        cluster.delete("v1", "ConfigMap", "config-autoscaler", SYSTEM_NAMESPACE)


def test_deleting_a_service_deletes_everything_it_owns(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    cluster.apply(service_manifest("gone", namespace))
    cluster.wait("its Deployment", lambda: cluster.get("apps/v1", "Deployment", "gone-00001-deployment", namespace))
    cluster.delete(SERVING, "Service", "gone", namespace)
    children = [
        (SERVING, "Revision", "gone-00001"), (SERVING, "Route", "gone"), (SERVING, "Configuration", "gone"),
        ("apps/v1", "Deployment", "gone-00001-deployment"), ("v1", "Service", "gone-00001"), ("v1", "Service", "gone"),
    ]  # fmt: skip
    for api_version, kind, name in children:
        cluster.wait(
            f"{kind} {name} deleted", lambda a=api_version, k=kind, n=name: cluster.get(a, k, n, namespace) is None
        )
    assert request(controller.port, f"gone.{namespace}.localhost")[0] == 404
    # Made again under the same name, it is a new Service: new objects, status written on them.
    cluster.apply(service_manifest("gone", namespace))
    cluster.wait(
        "its Deployment again", lambda: cluster.get("apps/v1", "Deployment", "gone-00001-deployment", namespace)
    )
    cluster.wait(
        "the new Route's status", lambda: (cluster.get(SERVING, "Route", "gone", namespace) or {}).get("status")
    )
    cluster.wait("the new Revision's status", lambda: cluster.ready("Revision", "gone-00001", namespace))


# --- helpers -------------------------------------------------------------------------------------


def endpoint_slice(revision: str, namespace: str, address: str) -> dict[str, Any]:
    """What Kubernetes' EndpointSlice controller writes for one ready pod of the Revision's Service
    (the labels it copies from that Service, and its own managed-by label replaced by ours)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{revision}-test",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": revision,
                "serving.knit.dev/revision": revision,
                "endpointslice.kubernetes.io/managed-by": "test.knit.dev",
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [address],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": f"{revision}-pod"},
            }
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def request(gateway_port: int, host: str) -> tuple[int, str]:
    """GET / through the controller's gateway with this Host."""
    response = requests.get(f"http://{HOST}:{gateway_port}/", headers={"Host": host}, timeout=30)
    return response.status_code, response.text


def knit(kube_api: KubeApi, *args: str) -> str:
    """The `knit` command against the test cluster (its admin kubeconfig); its output."""
    done = subprocess.run([sys.executable, "-m", "knit.cli", *args, "--kubeconfig", str(kube_api.kubeconfig)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_knit_commands_work_against_the_cluster(
    cluster: Cluster, controller: Controller, namespace: str, kube_api: KubeApi
) -> None:
    cluster.apply(service_manifest("cli", namespace))
    cluster.apply(endpoint_slice("cli-00001", namespace, "198.51.100.4"))
    cluster.wait("cli ready", lambda: (cluster.ready("Service", "cli", namespace) or {}).get("status") == "True")
    listing = knit(kube_api, "service", "list")
    row = next(line.split() for line in listing.splitlines() if line.startswith("cli "))
    assert row == ["cli", f"http://cli.{namespace}.localhost:8080", "cli-00001", "True"]

    updated = knit(kube_api, "service", "update", "cli", "-n", namespace, "--tag", "@latest=next")
    assert "100% @latest cli-00001 #next [ready] scale 1/1 (generation 1)" in updated
    service = cluster.get(SERVING, "Service", "cli", namespace)
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100, "tag": "next"}]
    assert service["status"]["traffic"][0]["url"] == f"http://next-cli.{namespace}.localhost:8080"
    revisions = knit(kube_api, "revision", "list", "-s", "cli")
    assert revisions.splitlines()[1].split() == ["cli-00001", "cli", "100%", "next", "1", "True", "1/1"]

    assert knit(kube_api, "service", "delete", "cli", "-n", namespace).strip() == f"Service {namespace}/cli: deleted"
    cluster.wait("cli gone", lambda: cluster.get(SERVING, "Service", "cli", namespace) is None)
    missing = subprocess.run(
        [sys.executable, "-m", "knit.cli", "service", "describe", "cli", "-n", namespace,
         "--kubeconfig", str(kube_api.kubeconfig)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert f'Service {namespace}/cli: services.serving.knit.dev "cli" not found (HTTP 404)' in missing.stderr


def test_the_apps_manifests_apply_to_the_cluster_unchanged_through_knit_apply(
    cluster: Cluster, controller: Controller, kube_api: KubeApi
) -> None:
    applied = knit(kube_api, "apply", "-f", str(REPO / "manifests/app"))
    assert (
        "Service default/danmaku-web: applied" in applied and "KafkaSource default/danmaku-comments: applied" in applied
    )
    cluster.wait(
        "danmaku-web's Deployment",
        lambda: cluster.get("apps/v1", "Deployment", "danmaku-web-00001-deployment", "default"),
    )
    binding = cluster.get("sources.knit.dev/v1", "SinkBinding", "danmaku-processor-results", "default")
    assert binding["spec"]["sink"]["uri"] == "/events"
    # The comments' dispatcher runs, and the processor's pods get K_SINK from the binding.
    cluster.wait(
        "the KafkaSource's dispatcher",
        lambda: cluster.get("apps/v1", "Deployment", "kafkasource-danmaku-comments", "default"),
    )
    processor = "danmaku-processor-00001-deployment"
    cluster.wait(
        "K_SINK in the processor's pods",
        lambda: (
            "value: http://danmaku-web.default.svc.cluster.local/events"
            in yaml.safe_dump((cluster.get("apps/v1", "Deployment", processor, "default") or {}).get("spec"))
        ),
    )
    cluster.wait(
        "knit eventing list says where comments go",
        lambda: (
            "dispatching to http://danmaku-processor.default.svc.cluster.local" in knit(kube_api, "eventing", "list")
        ),
    )
    deleted = knit(kube_api, "delete", "-f", str(REPO / "manifests/app"))
    assert "Service default/danmaku-web: deleted" in deleted
    cluster.wait("danmaku-web gone", lambda: cluster.get(SERVING, "Service", "danmaku-web", "default") is None)


# --- last: it stops the module's controller ----------------------------------------------------------


def test_a_standby_controller_takes_over_when_the_leader_goes(
    cluster: Cluster, controller: Controller, namespace: str
) -> None:
    # A Revision with a ready pod before the takeover: its EndpointSlice will not change after.
    cluster.apply(service_manifest("before", namespace))
    cluster.wait(
        "before's Deployment", lambda: cluster.get("apps/v1", "Deployment", "before-00001-deployment", namespace)
    )
    cluster.apply(endpoint_slice("before-00001", namespace, "198.51.100.7"))
    cluster.wait("before Ready", lambda: (cluster.ready("Service", "before", namespace) or {}).get("status") == "True")
    standby = Controller("standby", controller.kubeconfig, controller.folder, controller.kafka_bootstrap)
    standby.start()
    try:
        standby.wait_for_log(cluster, "standby waits for the Lease")
        assert standby.ready() == 503  # serving, but neither leading nor routing
        assert lease_holder(cluster) == "test-controller"
        controller.stop()  # as a pod deleted or a node lost
        cluster.wait("the standby leads and is ready", lambda: standby.ready() == 200)
        assert lease_holder(cluster) == "standby"
        cluster.apply(service_manifest("after", namespace))
        cluster.wait(
            "the new leader reconciles",
            lambda: cluster.get("apps/v1", "Deployment", "after-00001-deployment", namespace),
        )
        cluster.wait("the new leader writes status", lambda: cluster.ready("Service", "after", namespace))
        # It found the pod that was ready before it led, though no EndpointSlice changed since.
        revision = cluster.get(SERVING, "Revision", "before-00001", namespace)
        assert revision["status"]["actualReplicas"] == 1, revision["status"]
        assert cluster.ready("Service", "before", namespace)["status"] == "True"
    finally:
        standby.stop()
        print(standby.log.read_text()[-2000:])


def test_an_api_server_that_cannot_start_fully_leaves_no_process_behind(kube_api: KubeApi, tmp_path: Path) -> None:
    partial = tmp_path / "bin"
    partial.mkdir()
    for name in ("etcd", "kube-apiserver"):  # kube-controller-manager missing
        (partial / name).symlink_to(kube_api.bin_dir / name)
    broken = KubeApi(partial, tmp_path / "api")
    with pytest.raises(FileNotFoundError, match="kube-controller-manager is missing"):
        broken.start()
    left = [
        p.info["cmdline"][0]
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []  # etcd and kube-apiserver had started: both stopped again
