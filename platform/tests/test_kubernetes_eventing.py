"""Eventing on the Kubernetes runtime against a real API server (no nodes: no pod runs) and
the session's real Kafka broker: each KafkaSource, Trigger and PingSource becomes Deployments
of knit's image in its namespace, owned by it; the Brokers share one ingress in knit-system;
a SinkBinding reaches its subject's pod template; topics are made in Kafka; status is written.
That the pods then deliver events is the kind suite's to show (platform/tests_kind).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient
from kubernetes import client

from knit.eventing import dispatcher, identity, ingress
from knit.runtimes.kubernetes.runtime import BROKER_INGRESS, SYSTEM_NAMESPACE
from knit.testing.cluster import SERVING, Cluster
from knit.testing.controller import ControllerProcess, service_manifest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCES = "sources.knit.dev/v1"
EVENTING = "eventing.knit.dev/v1"


def kafka_source(name: str, namespace: str, sink: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": SOURCES,
        "kind": "KafkaSource",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "bootstrapServers": ["kafka.kafka.svc.cluster.local:9092"],
            "topics": [f"{namespace}.{name}"],
            "sink": {"ref": {"apiVersion": SERVING, "kind": "Service", "name": sink}},
            **spec,
        },
    }


def deployment(cluster: Cluster, name: str, namespace: str) -> dict[str, Any] | None:
    return cluster.get("apps/v1", "Deployment", name, namespace)


def env_of(obj: dict[str, Any]) -> dict[str, str]:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var.get("value", "") for var in container.get("env", [])}


def status_of(cluster: Cluster, api_version: str, kind: str, name: str, namespace: str, generation: int) -> Any:
    status = (cluster.get(api_version, kind, name, namespace) or {}).get("status") or {}
    return status if status.get("observedGeneration") == generation else None


def topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_a_kafka_source_runs_as_dispatcher_deployments_it_owns(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    cluster.apply(service_manifest("sink", namespace))
    source = cluster.apply(kafka_source("feed", namespace, "sink"))
    made = cluster.wait("the dispatcher's Deployment", lambda: deployment(cluster, "kafkasource-feed", namespace))
    assert [o["uid"] for o in made["metadata"]["ownerReferences"]] == [source["metadata"]["uid"]]
    pod = made["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "knit/platform:dev"
    assert pod["containers"][0]["command"] == ["python", "-m", "knit.eventing.dispatcher"]
    config = json.loads(env_of(made)[dispatcher.CONFIG_ENV])
    assert config["sink"] == f"http://sink.{namespace}.svc.cluster.local"
    assert config["bootstrap_servers"] == controller.kafka_bootstrap  # the runtime's Kafka
    assert f"{namespace}.feed" in topics(controller.kafka_bootstrap)  # made before the dispatcher
    status = cluster.wait(
        "KafkaSource status", lambda: status_of(cluster, SOURCES, "KafkaSource", "feed", namespace, 1)
    )
    assert status["sinkUri"] == f"http://sink.{namespace}.svc.cluster.local"
    assert any(c["type"] == "Ready" for c in status["conditions"])

    # Two consumers: two Deployments, and the one before is gone.
    cluster.apply(kafka_source("feed", namespace, "sink", consumers=2))
    for name in ("kafkasource-feed-1", "kafkasource-feed-2"):
        cluster.wait(f"Deployment {name}", lambda n=name: deployment(cluster, n, namespace))
    cluster.wait(
        "the single consumer's Deployment deleted", lambda: not deployment(cluster, "kafkasource-feed", namespace)
    )

    cluster.delete(SOURCES, "KafkaSource", "feed", namespace)
    for name in ("kafkasource-feed-1", "kafkasource-feed-2"):
        cluster.wait(f"Deployment {name} deleted", lambda n=name: not deployment(cluster, n, namespace))


def test_a_kafka_source_whose_sink_is_missing_runs_nothing_until_it_exists(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    cluster.apply(kafka_source("early", namespace, "later"))
    status = cluster.wait("status", lambda: status_of(cluster, SOURCES, "KafkaSource", "early", namespace, 1))
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "later" in ready["message"], ready
    assert deployment(cluster, "kafkasource-early", namespace) is None
    cluster.apply(service_manifest("later", namespace))
    cluster.wait("the dispatcher, once its sink exists", lambda: deployment(cluster, "kafkasource-early", namespace))


def test_a_source_admission_refuses_is_not_ready_with_the_reason(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    refused = kafka_source("nowhere", namespace, "sink")
    refused["spec"]["sink"] = {}  # neither a ref nor a URI: the schema cannot say so, admission does
    cluster.apply(refused)
    status = cluster.wait("status", lambda: status_of(cluster, SOURCES, "KafkaSource", "nowhere", namespace, 1))
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "sink" in ready["message"]
    assert deployment(cluster, "kafkasource-nowhere", namespace) is None


def test_a_sink_binding_applied_after_its_subject_reaches_its_pod_template(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    cluster.apply(service_manifest("web", namespace))
    cluster.apply(service_manifest("worker", namespace))
    name = "worker-00001-deployment"
    made = cluster.wait("worker's Deployment", lambda: deployment(cluster, name, namespace))
    assert "K_SINK" not in env_of(made)
    binding = {
        "apiVersion": SOURCES,
        "kind": "SinkBinding",
        "metadata": {"name": "results", "namespace": namespace},
        "spec": {
            "subject": {"apiVersion": SERVING, "kind": "Service", "name": "worker"},
            "sink": {"ref": {"apiVersion": SERVING, "kind": "Service", "name": "web"}, "uri": "/events"},
        },
    }
    cluster.apply(binding)
    sink = f"http://web.{namespace}.svc.cluster.local/events"
    cluster.wait(
        "K_SINK in worker's pods", lambda: env_of(deployment(cluster, name, namespace) or made).get("K_SINK") == sink
    )
    status = cluster.wait("status", lambda: status_of(cluster, SOURCES, "SinkBinding", "results", namespace, 1))
    assert status["sinkUri"] == sink
    cluster.delete(SOURCES, "SinkBinding", "results", namespace)
    cluster.wait("K_SINK gone", lambda: "K_SINK" not in env_of(deployment(cluster, name, namespace) or made))


def test_brokers_share_one_ingress_in_knit_system_and_each_trigger_has_a_dispatcher(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    cluster.apply({"apiVersion": EVENTING, "kind": "Broker", "metadata": {"name": "default", "namespace": namespace}})
    cluster.apply(service_manifest("audit", namespace))
    cluster.apply(
        {
            "apiVersion": EVENTING,
            "kind": "Trigger",
            "metadata": {"name": "audit", "namespace": namespace},
            "spec": {
                "broker": "default",
                "filter": {"attributes": {"type": "order.placed"}},
                "subscriber": {"ref": {"apiVersion": SERVING, "kind": "Service", "name": "audit"}},
            },
        }
    )
    made = cluster.wait("the ingress", lambda: deployment(cluster, BROKER_INGRESS, SYSTEM_NAMESPACE))
    config = json.loads(env_of(made)[ingress.CONFIG_ENV])
    assert f"{namespace}/default" in config["brokers"]
    address = cluster.wait("its Service", lambda: cluster.get("v1", "Service", BROKER_INGRESS, SYSTEM_NAMESPACE))
    assert address["spec"]["selector"] == made["spec"]["selector"]["matchLabels"]
    trigger = cluster.wait("the Trigger's dispatcher", lambda: deployment(cluster, "trigger-audit", namespace))
    trigger_config = json.loads(env_of(trigger)[dispatcher.CONFIG_ENV])
    assert trigger_config["filter_attributes"] == {"type": "order.placed"}
    assert trigger_config["sink"] == f"http://audit.{namespace}.svc.cluster.local"
    status = cluster.wait("Broker status", lambda: status_of(cluster, EVENTING, "Broker", "default", namespace, 1))
    assert (
        status["address"]["url"] == f"http://{BROKER_INGRESS}.{SYSTEM_NAMESPACE}.svc.cluster.local/{namespace}/default"
    )

    # The last Broker gone: its ingress goes too, and its Trigger waits for it (not ready).
    cluster.delete(EVENTING, "Broker", "default", namespace)
    cluster.wait("the ingress deleted", lambda: not deployment(cluster, BROKER_INGRESS, SYSTEM_NAMESPACE))
    cluster.wait(
        "the ingress's Service deleted", lambda: not cluster.get("v1", "Service", BROKER_INGRESS, SYSTEM_NAMESPACE)
    )
    cluster.wait("the Trigger's dispatcher stopped", lambda: not deployment(cluster, "trigger-audit", namespace))


def test_senders_have_the_api_servers_tokens_and_receivers_its_keys_as_in_knatives_oidc(
    cluster: Cluster, controller: ControllerProcess, namespace: str
) -> None:
    """The app's manifests: the processor runs as its ServiceAccount (made when missing) with a
    projected token for danmaku-web's audience at K_OIDC_TOKEN_FILE; the dispatcher runs as the
    KafkaSource's own ServiceAccount, with a token for the processor's audience; every Revision
    has the issuer and its keys. A token the API server issues for that ServiceAccount is one
    those keys verify, naming the processor's ServiceAccount as its sender (in the namespace
    `default`, the one sender danmaku-web's manifest allows)."""
    for file in sorted((REPO / "manifests/app").glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            cluster.apply({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
    processor = cluster.wait(
        "the processor's Deployment with K_SINK",
        lambda: (
            (d := deployment(cluster, "danmaku-processor-00001-deployment", namespace)) and "K_SINK" in env_of(d) and d
        ),
    )
    pod = processor["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "danmaku-processor"
    assert cluster.get("v1", "ServiceAccount", "danmaku-processor", namespace)
    env = env_of(processor)
    web_audience = f"serving.knit.dev/service/{namespace}/danmaku-web"
    assert env["K_SINK_AUDIENCE"] == web_audience
    assert env["K_OIDC_ISSUER"] == "https://kubernetes.default.svc.cluster.local"
    assert mounted_token(pod, env["K_OIDC_TOKEN_FILE"]) == web_audience

    web = cluster.wait(
        "danmaku-web's Deployment", lambda: deployment(cluster, "danmaku-web-00001-deployment", namespace)
    )
    web_env = env_of(web)
    assert web_env["K_AUDIENCE"] == web_audience and web_env["K_OIDC_JWKS"] == "/var/run/knit/oidc/jwks.json"
    mounts = {m["mountPath"]: m["name"] for m in web["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in web["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/var/run/knit/oidc"]]["configMap"]["name"] == "knit-oidc"

    account = "danmaku-comments-oidc-sources.knit.dev-kafkasource"
    dispatcher_deployment = cluster.wait(
        "the dispatcher", lambda: deployment(cluster, "kafkasource-danmaku-comments", namespace)
    )
    dispatcher_pod = dispatcher_deployment["spec"]["template"]["spec"]
    assert dispatcher_pod["serviceAccountName"] == account
    source = cluster.get(SOURCES, "KafkaSource", "danmaku-comments", namespace)
    made = cluster.get("v1", "ServiceAccount", account, namespace)
    assert [o["uid"] for o in made["metadata"]["ownerReferences"]] == [source["metadata"]["uid"]]
    config = json.loads(env_of(dispatcher_deployment)[dispatcher.CONFIG_ENV])
    assert config["identity"] == f"system:serviceaccount:{namespace}:{account}"
    processor_audience = f"serving.knit.dev/service/{namespace}/danmaku-processor"
    assert mounted_token(dispatcher_pod, config["sink_token_file"]) == processor_audience

    # What the kubelet would put at K_OIDC_TOKEN_FILE, checked with the keys in knit-oidc.
    jwks = json.loads(cluster.get("v1", "ConfigMap", "knit-oidc", namespace)["data"]["jwks.json"])
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[web_audience]))
    token = (
        client.CoreV1Api(cluster.api_client)
        .create_namespaced_service_account_token("danmaku-processor", namespace, request)
        .status.token
    )
    claims = identity.verify_token(
        token, identity.key_set(jwks), issuer=env["K_OIDC_ISSUER"], audience=web_audience, now=time.time()
    )
    assert claims.subject == f"system:serviceaccount:{namespace}:danmaku-processor"


def mounted_token(pod: dict[str, Any], path: str) -> str:
    """The audience of the projected ServiceAccount token the pod finds at `path`."""
    folder, _, file = path.rpartition("/")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == folder)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    (source,) = volume["projected"]["sources"]
    assert source["serviceAccountToken"]["path"] == file
    return source["serviceAccountToken"]["audience"]
