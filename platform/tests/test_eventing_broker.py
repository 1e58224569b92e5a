"""Broker, Triggers and PingSource on the local runtime: real ingress, real dispatchers, real
Kafka, real HTTP subscribers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from knit.runtimes.local.runtime import Options
from knit.testing.harness import EventSink, RunningManifests

pytestmark = pytest.mark.integration


class ReplyingSubscriber:
    """A subscriber that answers each event with a reply CloudEvent (binary mode)."""

    def __init__(self, reply_type: str) -> None:
        self.received: list[str] = []
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event_id = self.headers["ce-id"]
                subscriber.received.append(event_id)
                body = json.dumps({"acknowledges": event_id}).encode()
                self.send_response(200)
                for name, value in (
                    ("ce-specversion", "1.0"),
                    ("ce-id", f"ack-{event_id}"),
                    ("ce-type", reply_type),
                    ("ce-source", "/refunds"),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                ):
                    self.send_header(name, value)  # fmt: skip
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def manifests(orders: str, refunds: str, acks: str, pings: str) -> list[dict]:
    broker_ref = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}

    def trigger(name: str, subscriber: str, **filtering) -> dict:
        spec = {"broker": "default", "subscriber": {"uri": subscriber}, **filtering,
                "delivery": {"retry": 3, "backoffDelay": "PT0.05S"}}  # fmt: skip
        return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": name}, "spec": spec}

    return [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default"}},
        trigger("orders", orders, filters=[{"prefix": {"type": "com.shop.order."}}]),
        trigger("refunds", refunds, filter={"attributes": {"type": "com.shop.refund.created"}}),
        trigger("acks", acks, filters=[{"exact": {"type": "com.shop.refund.acknowledged"}}]),
        trigger("pings", pings, filters=[{"exact": {"type": "dev.knative.sources.ping"}}]),
        {
            "apiVersion": "sources.knative.dev/v1",
            "kind": "PingSource",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "@every 1s",
                "contentType": "application/json",
                "data": '{"tick": true}',
                "sink": {"ref": broker_ref},
            },
        },
    ]


@pytest.fixture(scope="module")
def eventing(kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("eventing")
    sinks = {name: EventSink() for name in ("orders", "acks", "pings")}
    refunds = ReplyingSubscriber("com.shop.refund.acknowledged")
    path = tmp_path / "eventing.yaml"
    path.write_text(
        yaml.safe_dump_all(manifests(sinks["orders"].url, refunds.url, sinks["acks"].url, sinks["pings"].url))
    )
    running = RunningManifests([path], kafka_bootstrap, tmp_path / "processes.log", Options(port=0))
    running.start()
    try:
        yield running, sinks, refunds
    finally:
        running.stop()
        for sink in sinks.values():
            sink.close()
        refunds.close()


def send(broker: str, event_id: str, event_type: str, **extra_headers) -> requests.Response:
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type, "ce-source": "/shop",
               "Content-Type": "application/json", **extra_headers}  # fmt: skip
    return requests.post(broker, data=json.dumps({"id": event_id}), headers=headers, timeout=10)


def test_triggers_pass_their_subscribers_exactly_the_events_their_filters_match(eventing):
    running, sinks, refunds = eventing
    broker = running.runtime.address_of("Broker", "default", "default")

    for event_id, event_type in (("o1", "com.shop.order.created"), ("r1", "com.shop.refund.created"),
                                 ("o2", "com.shop.order.paid"), ("x1", "com.shop.review.created")):  # fmt: skip
        assert send(broker, event_id, event_type).status_code == 202

    orders = sinks["orders"].wait_for(2)
    assert sorted(e.id for e in orders) == ["o1", "o2"]
    deadline = time.monotonic() + 60  # only a hang takes this long
    while not refunds.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refunds.received == ["r1"]
    # The refunds subscriber's reply went back into the Broker and on to the acks Trigger.
    (ack,) = sinks["acks"].wait_for(1)
    assert (ack.id, ack.headers["ce-type"]) == ("ack-r1", "com.shop.refund.acknowledged")
    assert json.loads(ack.body) == {"acknowledges": "r1"}
    # Nothing else came: no event can say "the orders Trigger dropped r1 and x1", so this stays a
    # window. A wrongly passed event would have come with o1 and o2 (all were sent before o2) or
    # before the ack, which went through the Broker after them; 2 s more is a margin, not a deadline.
    time.sleep(2)
    assert sorted(e.id for e in sinks["orders"].events) == ["o1", "o2"]


def test_a_ping_source_sends_knatives_ping_events_on_its_schedule(eventing):
    _, sinks, _ = eventing
    pings = sinks["pings"].wait_for(2)
    first, second = pings[:2]
    assert first.headers["ce-type"] == "dev.knative.sources.ping"
    assert first.headers["ce-source"] == "/apis/v1/namespaces/default/pingsources/tick"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"tick": True}
    assert first.id != second.id


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, 400, "missing required attribute: source"),
        ({"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, 400, "missing required attribute: id"),
        ({"ce-specversion": "1.0"}, 400, "missing required attributes: id, source, type"),
        ({"ce-specversion": "0.9", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, 400, "specversion"),
        ({"Content-Type": "application/json"}, 400, "not a CloudEvent"),
        ({"Content-Type": "application/cloudevents+json"}, 400, "malformed CloudEvent: the body is not JSON"),
    ],
)
def test_the_broker_ingress_refuses_a_malformed_event_naming_what_is_wrong(eventing, headers, status, fragment):
    running, _, _ = eventing
    broker = running.runtime.address_of("Broker", "default", "default")
    response = requests.post(broker, data=b"{not json", headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "invalid_event"
    assert fragment in response.json()["error"]["message"]


def test_an_unknown_broker_is_404_listing_the_known_ones(eventing):
    running, _, _ = eventing
    response = send(running.runtime.address_of("Broker", "default", "nope"), "1", "t")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no Broker default/nope; known: default/default"
