"""The local runtime keeps its own processes running: a dispatcher that dies is started
again and resumes from its last committed offset (real broker, real processes)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
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
        (restarted,) = running._in_loop(running.runtime.adapters)
        assert restarted["restarts"] == 1
        assert restarted["pid"] != dispatcher["pid"]
        assert restarted["port"] == dispatcher["port"]  # its address stays what it was
    finally:
        running.stop()
        sink.close()
