"""Apache Kafka inside the kind cluster (manifests/platform/kafka.yaml, installed by `make
kind-platform`): a pod running knit's own image, whose kafka-python the platform's code uses,
creates a topic, produces a record, reads it back and commits its offset as a consumer group,
all at kafka.kafka.svc.cluster.local:9092, the address the manifests name; it prints what it saw
as one JSON line and the test checks it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from knit.testing.kind import Kind

BOOTSTRAP = "kafka.kafka.svc.cluster.local:9092"
NAMESPACE = "kind-kafka-test"  # its own: the serving tests delete and remake theirs
DEADLINE = 120  # seconds the pod may run (activeDeadlineSeconds): only a hang reaches it

# Run in the pod as `python -c`; argv: bootstrap, topic, value. Every call has a bounded timeout.
ROUND_TRIP = """
import json, sys, time
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, topic, value = sys.argv[1], sys.argv[2], sys.argv[3].encode()
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kind-test", request_timeout_ms=30000)
admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=30000)
created = topic in admin.list_topics()
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=30000)
sent = producer.send(topic, key=b"room-1", value=value).get(timeout=60)
producer.close(timeout=10)
# The record's own partition, assigned by hand (no rebalance to wait for); the group only commits.
partition = TopicPartition(topic, sent.partition)
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=topic, auto_offset_reset="earliest",
                         enable_auto_commit=False, request_timeout_ms=30000)
consumer.assign([partition])
records, deadline = [], time.monotonic() + 60
while not records and time.monotonic() < deadline:
    records = [record for batch in consumer.poll(timeout_ms=1000).values() for record in batch]
consumer.commit()
committed = consumer.committed(partition)
consumer.close()
admin.delete_topics([topic], timeout_ms=30000)
admin.close()
print(json.dumps({
    "created": created, "sent": {"partition": sent.partition, "offset": sent.offset},
    "received": [{"key": r.key.decode(), "value": r.value.decode(), "offset": r.offset} for r in records],
    "committed": committed,
}))
"""


@pytest.fixture(scope="module")
def kind() -> Iterator[Kind]:
    kind = Kind()
    kind.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    yield kind


def round_trip_pod(name: str, topic: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "kafka-round-trip"}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": DEADLINE,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client",
                "image": "knit/platform:dev",
                "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", ROUND_TRIP, BOOTSTRAP, topic, value],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip


@pytest.mark.timeout(2 * DEADLINE + 60)
def test_a_pod_produces_and_consumes_through_the_clusters_kafka(kind: Kind) -> None:
    assert kind.get("apps/v1", "Deployment", "kafka", "kafka"), "no Deployment kafka/kafka: run make kind-platform"
    kind.wait("Kafka ready", lambda: (kind.get("apps/v1", "Deployment", "kafka", "kafka") or {})
              .get("status", {}).get("readyReplicas"), timeout=DEADLINE)  # fmt: skip

    run = uuid.uuid4().hex[:8]
    name, topic, value = f"kafka-round-trip-{run}", f"kind-test.round-trip.{run}", f"hello from {run}"
    kind.apply(round_trip_pod(name, topic, value))
    try:
        phase = kind.wait(f"pod {name} finished", lambda: _finished(kind, name), timeout=DEADLINE + 30)
        log = kind.core.read_namespaced_pod_log(name, NAMESPACE)
        assert phase == "Succeeded", f"the client pod {phase}; its log:\n{log}"
        seen = json.loads(log.strip().splitlines()[-1])
    finally:
        kind.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)

    assert seen["created"] is True
    assert seen["received"] == [{"key": "room-1", "value": value, "offset": seen["sent"]["offset"]}]
    assert seen["committed"] == seen["sent"]["offset"] + 1


def _finished(kind: Kind, name: str) -> str | None:
    """The pod's phase once it has ended (Succeeded, Failed), else None."""
    try:
        phase = kind.core.read_namespaced_pod(name, NAMESPACE).status.phase
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return phase if phase in ("Succeeded", "Failed") else None
