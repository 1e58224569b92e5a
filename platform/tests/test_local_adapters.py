"""The local runtime keeps its own processes running: a dispatcher that dies is started
again and resumes from its last committed offset; a re-applied KafkaSource or Trigger
restarts its dispatcher only when it changed (real broker, real processes)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
import requests
import yaml
from kafka import KafkaProducer

from knit.kafka.admin import ensure_topics
from knit.runtimes.local.processes import restart_delay
from knit.runtimes.local.runtime import Options
from knit.testing.harness import EventSink, RunningManifests


def test_the_restart_delay_doubles_from_half_a_second_up_to_thirty():
    assert [restart_delay(n) for n in range(0, 9)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def produce(kafka_bootstrap: str, topic: str, ids: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for event_id in ids:
        headers = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_type", b"t"), ("ce_source", b"/s")]
        producer.send(topic, value=b"{}", headers=headers)
    producer.flush()
    producer.close()


@pytest.mark.integration
def test_a_killed_dispatcher_is_started_again_and_delivers_what_came_after(kafka_bootstrap, tmp_path):
    topic = f"adapters-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    sink = EventSink()
    source = {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "KafkaSource",
        "metadata": {"name": "feed"},
        "spec": {
            "bootstrapServers": [kafka_bootstrap],
            "topics": [topic],
            "initialOffset": "earliest",
            "sink": {"uri": sink.url},
        },
    }
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump(source))
    running = RunningManifests([path], kafka_bootstrap, tmp_path / "processes.log", Options(port=0))
    running.start()
    try:
        produce(kafka_bootstrap, topic, ["before"])
        assert sink.wait_for(1)[0].id == "before"
        (dispatcher,) = running._in_loop(running.runtime.adapters)
        assert dispatcher["name"] == "kafkasource/feed" and dispatcher["restarts"] == 0

        os.kill(dispatcher["pid"], signal.SIGKILL)
        produce(kafka_bootstrap, topic, ["after-1", "after-2"])

        # At least once: "before" may come again if the kill beat its commit.
        deadline = time.monotonic() + 60
        while not {"after-1", "after-2"} <= set(sink.ids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(sink.ids()) == {"before", "after-1", "after-2"}
        # The runtime counts the restart once its probe saw the new process ready, which can be
        # after that process delivered: wait for the count (only a hang takes 60 s).
        deadline = time.monotonic() + 60
        while (restarted := running._in_loop(running.runtime.adapters)[0])["restarts"] == 0:
            assert time.monotonic() < deadline, restarted
            time.sleep(0.05)
        assert restarted["restarts"] == 1
        assert restarted["pid"] != dispatcher["pid"]
        assert restarted["port"] == dispatcher["port"]  # its address stays what it was
    finally:
        running.stop()
        sink.close()


def kafka_source(topic: str, kafka_bootstrap: str, sink: str) -> dict:
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "KafkaSource",
        "metadata": {"name": "feed"},
        "spec": {"bootstrapServers": [kafka_bootstrap], "topics": [topic], "initialOffset": "earliest",
                 "sink": {"uri": sink}},
    }  # fmt: skip


def adapter_named(running: RunningManifests, name: str) -> dict:
    (adapter,) = [a for a in running._in_loop(running.runtime.adapters) if a["name"] == name]
    return adapter


@pytest.mark.integration
def test_reapplying_a_kafka_source_restarts_its_dispatcher_only_when_it_changed(kafka_bootstrap, tmp_path):
    # Given a KafkaSource delivering to one sink
    topic = f"adapters-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    old_sink, new_sink = EventSink(), EventSink()
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump(kafka_source(topic, kafka_bootstrap, old_sink.url)))
    running = RunningManifests([path], kafka_bootstrap, tmp_path / "processes.log", Options(port=0))
    running.start()
    try:
        produce(kafka_bootstrap, topic, ["first"])
        assert old_sink.wait_for(1)[0].id == "first"
        before = adapter_named(running, "kafkasource/feed")

        # When the same manifest is applied again, nothing restarts
        assert running.apply([path]) == ["KafkaSource default/feed: unchanged"]
        assert adapter_named(running, "kafkasource/feed")["pid"] == before["pid"]

        # When it is applied with another sink
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump(kafka_source(topic, kafka_bootstrap, new_sink.url)))
        assert running.apply([changed]) == [f"KafkaSource default/feed: dispatching to {new_sink.url}"]

        # Then a new dispatcher of the same group sends the next events to the new sink only,
        # and none that the old one had delivered (it committed them when it was stopped)
        assert adapter_named(running, "kafkasource/feed")["pid"] != before["pid"]
        produce(kafka_bootstrap, topic, ["second", "third"])
        assert [event.id for event in new_sink.wait_for(2)] == ["second", "third"]
        assert old_sink.ids() == ["first"]
    finally:
        running.stop()
        old_sink.close()
        new_sink.close()


def broker_and_trigger(subscriber: str) -> list[dict]:
    return [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "orders"},
         "spec": {"broker": "default", "subscriber": {"uri": subscriber},
                  "filter": {"attributes": {"type": "com.shop.order.created"}}}},
    ]  # fmt: skip


def send_order(running: RunningManifests, event_id: str) -> None:
    broker = running.runtime.address_of("Broker", "default", "default")
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": "com.shop.order.created",
               "ce-source": "/shop", "Content-Type": "application/json"}  # fmt: skip
    assert requests.post(broker, data=b"{}", headers=headers, timeout=10).status_code == 202


@pytest.mark.integration
def test_reapplying_a_trigger_with_another_subscriber_sends_the_next_events_there_only(kafka_bootstrap, tmp_path):
    # Given a Broker and a Trigger delivering orders to one subscriber
    old_subscriber, new_subscriber = EventSink(), EventSink()
    path = tmp_path / "eventing.yaml"
    path.write_text(yaml.safe_dump_all(broker_and_trigger(old_subscriber.url)))
    running = RunningManifests([path], kafka_bootstrap, tmp_path / "processes.log", Options(port=0))
    running.start()
    try:
        send_order(running, "order-1")
        assert old_subscriber.wait_for(1)[0].id == "order-1"
        before = adapter_named(running, "trigger/orders")
        ingress = adapter_named(running, "broker-ingress")

        # When the Trigger is applied again with another subscriber (the Broker unchanged)
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump_all(broker_and_trigger(new_subscriber.url)))
        assert running.apply([changed]) == [f"Trigger default/orders: subscriber {new_subscriber.url}"]

        # Then only its dispatcher was restarted, and the next orders reach the new subscriber only
        assert adapter_named(running, "trigger/orders")["pid"] != before["pid"]
        assert adapter_named(running, "broker-ingress")["pid"] == ingress["pid"]
        send_order(running, "order-2")
        assert [event.id for event in new_subscriber.wait_for(1)] == ["order-2"]
        assert old_subscriber.ids() == ["order-1"]
    finally:
        running.stop()
        old_subscriber.close()
        new_subscriber.close()
