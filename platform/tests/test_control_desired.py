"""The control core's desired eventing world, as a table: from applied resources and what exists,
which adapters run with which configuration, and which resources are blocked and why."""

import json
import textwrap

import pytest

from knit.admission import Context, load_manifests
from knit.control.desired import desired_eventing

SERVICE_REF = "{ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: %s}}"
SOURCE = """
apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka:9092]
  topics: [comments]
  consumers: %d
  sink: %s
"""
BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
TRIGGER = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: all}
spec:
  broker: default
  subscriber: %s
  delivery: {deadLetterSink: %s}
"""
EVERYTHING = {("Service", "default", "web"), ("Service", "default", "dead"), ("Broker", "default", "default")}


def resources(tmp_path, *documents):
    (tmp_path / "m.yaml").write_text("\n---\n".join(textwrap.dedent(d) for d in documents))
    return load_manifests([tmp_path / "m.yaml"], Context(known=EVERYTHING)).resources


def world(applied, exists=EVERYTHING):
    address_of = lambda kind, namespace, name: f"http://{kind.lower()}.{name}.{namespace}"  # noqa: E731
    return desired_eventing(applied, lambda *key: key in exists, "kafka:9092", address_of, None)


@pytest.mark.parametrize("consumers", [1, 3])
def test_a_source_whose_sink_exists_runs_one_dispatcher_per_consumer(tmp_path, consumers):
    desired = world(resources(tmp_path, SOURCE % (consumers, SERVICE_REF % "web")))
    adapter = desired.adapters[("KafkaSource", "default", "feed")]
    names = ["kafkasource/feed"] if consumers == 1 else [f"kafkasource/feed/{n}" for n in (1, 2, 3)]
    assert [p.name for p in adapter.processes] == names
    assert {p.module for p in adapter.processes} == {"knit.eventing.dispatcher"}
    config = json.loads(adapter.processes[0].config)
    assert (config["sink"], config["topics"], config["bootstrap_servers"]) == (
        "http://service.web.default",
        ["comments"],
        "kafka:9092",
    )
    assert (adapter.topics, adapter.what) == (("comments",), "dispatching to http://service.web.default")
    assert desired.blocked == {} and desired.ingress is None


def test_a_source_whose_sink_was_deleted_runs_nothing_and_says_why(tmp_path):
    applied = resources(tmp_path, SOURCE % (1, SERVICE_REF % "web"))
    desired = world(applied, exists=EVERYTHING - {("Service", "default", "web")})
    assert desired.adapters == {}
    blocked = desired.blocked[("KafkaSource", "default", "feed")]
    assert (blocked.type, blocked.status, blocked.reason) == ("SinkProvided", "False", "SinkNotFound")
    assert blocked.message == "spec.sink.ref: no Service 'web'; apply it (it was deleted or not applied yet)"


def test_a_trigger_needs_its_broker_and_its_dead_letter_sink(tmp_path):
    applied = resources(tmp_path, BROKER, TRIGGER % (SERVICE_REF % "web", SERVICE_REF % "dead"))
    running = world(applied)
    assert list(running.adapters) == [("Trigger", "default", "all")]
    assert running.ingress is not None and running.ingress.brokers == {"default/default": applied[0].topic}

    no_broker = world([applied[1]], exists=EVERYTHING - {("Broker", "default", "default")})
    broker_missing = no_broker.blocked[("Trigger", "default", "all")]
    assert (broker_missing.type, broker_missing.reason) == ("BrokerReady", "BrokerDoesNotExist")
    assert no_broker.ingress is None and no_broker.adapters == {}

    no_dead_letters = world(applied, exists=EVERYTHING - {("Service", "default", "dead")})
    blocked = no_dead_letters.blocked[("Trigger", "default", "all")]
    assert (blocked.type, blocked.reason, blocked.message.split(":")[0]) == (
        "DeadLetterSinkResolved", "SinkNotFound", "spec.delivery.deadLetterSink.ref"
    )  # fmt: skip


def test_reconciling_twice_wants_the_same_and_a_changed_sink_wants_a_new_adapter(tmp_path):
    applied = resources(tmp_path, SOURCE % (1, SERVICE_REF % "web"))
    assert world(applied) == world(applied)
    changed = resources(tmp_path, SOURCE % (1, SERVICE_REF % "dead"))
    key = ("KafkaSource", "default", "feed")
    assert world(changed).adapters[key] != world(applied).adapters[key]
