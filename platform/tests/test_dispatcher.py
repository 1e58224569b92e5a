"""The KafkaSource dispatcher against a real broker, a real HTTP sink and a real process."""

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.host import free_port
from knit.kafka.admin import ensure_topics
from knit.testing.harness import DispatcherProcess, EventSink

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap):
    name = f"test-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [name], partitions=2)
    return name


@pytest.fixture
def dispatchers(tmp_path):
    started: list[DispatcherProcess] = []

    def start(config: DispatcherConfig) -> DispatcherProcess:
        dispatcher = DispatcherProcess(config, log_path=tmp_path / f"dispatcher-{len(started)}.log")
        started.append(dispatcher)
        return dispatcher.start()

    yield start
    for dispatcher in started:
        dispatcher.stop()


def config_for(kafka_bootstrap, topic, sink_url, **overrides):
    settings = dict(
        name="feed",
        namespace="default",
        bootstrap_servers=kafka_bootstrap,
        topics=(topic,),
        consumer_group=f"group-{topic}",
        sink=sink_url,
        initial_offset="earliest",
        delivery=DeliveryPolicy(retry=5, backoff_policy="exponential", backoff_delay=0.05, timeout=5),
    )
    return DispatcherConfig(**{**settings, **overrides})


def produce(kafka_bootstrap, topic, count, prefix="e"):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    ids = []
    for n in range(count):
        event_id = f"{prefix}-{n}"
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", event_id.encode()),
            ("ce_type", b"test.event"),
            ("ce_source", b"/test"),
            ("content-type", b"application/json"),
        ]
        producer.send(topic, f'{{"n": {n}}}'.encode(), key=f"k{n % 3}".encode(), headers=headers)
        ids.append(event_id)
    producer.flush()
    producer.close()
    return ids


def committed_total(kafka_bootstrap, topic, group):
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
    finally:
        consumer.close()


def test_every_record_reaches_the_sink_as_a_cloudevent_and_is_committed(
    kafka_bootstrap, topic, event_sink, dispatchers
):
    ids = produce(kafka_bootstrap, topic, 20)
    config = config_for(kafka_bootstrap, topic, event_sink.url)
    dispatcher = dispatchers(config)

    events = event_sink.wait_for(20)

    assert sorted(event.id for event in events) == sorted(ids)
    assert all(event.headers["ce-type"] == "test.event" for event in events)
    assert all(event.headers["ce-specversion"] == "1.0" for event in events)
    # Offsets are committed once delivered: a stopped dispatcher leaves nothing to redo.
    dispatcher.stop()
    assert committed_total(kafka_bootstrap, topic, config.consumer_group) == 20


def test_a_failing_sink_is_retried_until_it_answers_2xx(kafka_bootstrap, topic, event_sink, dispatchers):
    event_sink.answers = [500, 503, 429, 502]
    ids = produce(kafka_bootstrap, topic, 5)
    dispatchers(config_for(kafka_bootstrap, topic, event_sink.url, ordering="ordered"))

    events = event_sink.wait_for(5)

    assert sorted(event.id for event in events) == sorted(ids)


def test_records_wait_while_the_sink_is_down_and_arrive_when_it_is_back(kafka_bootstrap, topic, dispatchers):
    port = free_port()
    ids = produce(kafka_bootstrap, topic, 10)
    delivery = DeliveryPolicy(retry=8, backoff_policy="exponential", backoff_delay=0.1, timeout=2)
    dispatchers(config_for(kafka_bootstrap, topic, f"http://127.0.0.1:{port}/", delivery=delivery))
    time.sleep(1.5)  # the dispatcher is retrying against a closed port meanwhile

    sink = EventSink(port=port)
    try:
        events = sink.wait_for(10, timeout=60)
    finally:
        sink.close()
    assert sorted(set(event.id for event in events)) == sorted(ids)


def test_ordered_delivery_keeps_each_partitions_order(kafka_bootstrap, topic, event_sink, dispatchers):
    event_sink.answers = [500, 500]
    ids = produce(kafka_bootstrap, topic, 30)
    dispatchers(config_for(kafka_bootstrap, topic, event_sink.url, ordering="ordered"))

    events = event_sink.wait_for(30)

    by_key: dict[str, list[int]] = {}
    for event in events:
        by_key.setdefault(event.headers["ce-partitionkey"], []).append(int(event.id.split("-")[1]))
    assert sorted(n for ns in by_key.values() for n in ns) == sorted(int(i.split("-")[1]) for i in ids)
    assert all(ns == sorted(ns) for ns in by_key.values()), by_key
