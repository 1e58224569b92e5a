"""A dispatcher process presents its token to each destination that has an audience: the
token from its file, read again once the platform renewed it; none where there is no file."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer

from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.eventing.identity import Issuer, key_set, verify_token
from knit.kafka.admin import ensure_topics
from knit.runtimes.local.oidc import TokenFiles
from knit.testing.harness import DispatcherProcess, ScriptedSink

pytestmark = pytest.mark.integration

SENDER = "system:serviceaccount:default:feed-oidc-sources.knit.dev-kafkasource"
SINK_AUDIENCE = "serving.knit.dev/service/default/worker"
DEAD_LETTER_AUDIENCE = "serving.knit.dev/service/default/dead-letters"


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def topic(kafka_bootstrap):
    name = f"identity-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [name], partitions=1)
    return name


@pytest.fixture
def sinks():
    opened: list[ScriptedSink] = []

    def open_sink(**kwargs) -> ScriptedSink:
        opened.append(ScriptedSink(**kwargs))
        return opened[-1]

    yield open_sink
    for sink in opened:
        sink.close()


def produce(kafka_bootstrap, topic, ids):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for event_id in ids:
        headers = [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_type", b"t"), ("ce_source", b"/t")]
        producer.send(topic, b"{}", headers=headers)
    producer.flush()
    producer.close()


def bearer(event) -> str:
    scheme, _, token = event.headers.get("authorization", "").partition(" ")
    assert scheme == "Bearer", event.headers
    return token


def test_the_sink_gets_the_current_token_and_the_dead_letter_sink_its_own(kafka_bootstrap, topic, sinks, tmp_path):
    # given token files for the sink and the dead-letter sink, and a sink that refuses "bad"
    clock = Clock()
    issuer = Issuer()
    files = TokenFiles(tmp_path / "oidc", issuer, clock)
    sink = sinks(respond=lambda event, _: 400 if event.id == "bad" else 200)
    dead_letters = sinks()
    config = DispatcherConfig(
        name="feed", namespace="default", bootstrap_servers=kafka_bootstrap, topics=(topic,),
        consumer_group=f"group-{topic}", sink=sink.url, initial_offset="earliest",
        delivery=DeliveryPolicy(retry=0, backoff_delay=0.05, timeout=5), dead_letter_sink=dead_letters.url,
        identity=SENDER, sink_token_file=files.token_file(SENDER, SINK_AUDIENCE),
        dead_letter_sink_token_file=files.token_file(SENDER, DEAD_LETTER_AUDIENCE),
    )  # fmt: skip
    dispatcher = DispatcherProcess(config, log_path=tmp_path / "dispatcher.log").start()
    try:
        # when events flow, then the token is renewed, and more events flow
        produce(kafka_bootstrap, topic, ["first", "bad"])
        sink.wait_for_ids(["first"])
        dead_letters.wait_for_ids(["bad"])
        clock.now += issuer.lifetime / 2
        assert files.renew() == 2
        produce(kafka_bootstrap, topic, ["second"])
        sink.wait_for_ids(["second"])
    finally:
        dispatcher.stop()
    # then each delivery carried a valid token for its destination, the renewed one after renewal
    keys = key_set(issuer.jwks())
    first, second = (next(e for e in sink.events if e.id == name) for name in ("first", "second"))
    before = verify_token(bearer(first), keys, issuer=issuer.name, audience=SINK_AUDIENCE, now=clock.now)
    after = verify_token(bearer(second), keys, issuer=issuer.name, audience=SINK_AUDIENCE, now=clock.now)
    assert before.subject == after.subject == SENDER
    assert after.issued_at == before.issued_at + issuer.lifetime / 2
    (letter,) = dead_letters.events
    claims = verify_token(bearer(letter), keys, issuer=issuer.name, audience=DEAD_LETTER_AUDIENCE, now=clock.now)
    assert claims.subject == SENDER


def test_without_a_token_file_no_authorization_header_is_sent(kafka_bootstrap, topic, sinks, tmp_path):
    sink = sinks()
    config = DispatcherConfig(
        name="plain", namespace="default", bootstrap_servers=kafka_bootstrap, topics=(topic,),
        consumer_group=f"group-{topic}", sink=sink.url, initial_offset="earliest",
    )  # fmt: skip
    dispatcher = DispatcherProcess(config, log_path=tmp_path / "dispatcher.log").start()
    try:
        produce(kafka_bootstrap, topic, ["plain"])
        (event,) = sink.wait_for_ids(["plain"])
    finally:
        dispatcher.stop()
    assert "authorization" not in event.headers
