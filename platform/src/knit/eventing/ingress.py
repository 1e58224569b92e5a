"""The Broker ingress: CloudEvents in over HTTP, stored in the Broker's Kafka topic.

`POST /<namespace>/<broker>` takes a CloudEvent in binary or structured content mode,
checks it (a missing or invalid attribute is a 400 naming it), produces it to the
Broker's topic in Kafka binary content mode (key: its `partitionkey` extension, if any)
and answers 202 once Kafka acknowledged it, as Knative's Kafka Broker does. Run as
`python -m knit.eventing.ingress` with IngressConfig as JSON in KNIT_INGRESS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, field

from aiohttp import web
from cloudevents.core.bindings import http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from kafka import KafkaProducer
from kafka.errors import KafkaError

from knit.eventing import adapter

CONFIG_ENV = "KNIT_INGRESS"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
log = logging.getLogger("knit.ingress")
_FORMAT = JSONFormat()


@dataclass(frozen=True)
class IngressConfig:
    bootstrap_servers: str
    brokers: dict[str, str] = field(default_factory=dict)  # "namespace/name" -> topic

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IngressConfig:
        return cls(**json.loads(text))


class InvalidEvent(ValueError):
    pass


def parse_event(headers: dict[str, str], body: bytes) -> object:
    """A CloudEvent from an HTTP request; InvalidEvent names what is missing or wrong."""
    lowered = {name.lower(): value for name, value in headers.items()}
    structured = lowered.get("content-type", "").startswith("application/cloudevents+json")
    if "ce-specversion" not in lowered and not structured:
        raise InvalidEvent(
            "not a CloudEvent: send ce-specversion, ce-id, ce-source and ce-type headers (binary mode) "
            "or Content-Type application/cloudevents+json (structured mode)"
        )
    # The SDK makes up an id (and a time) when none is given; an ingress must not.
    if structured:
        try:
            given = json.loads(body)
        except ValueError as error:
            raise InvalidEvent(f"malformed CloudEvent: the body is not JSON ({error})") from error
        given = given if isinstance(given, dict) else {}
    else:
        given = {name.removeprefix("ce-"): value for name, value in lowered.items() if name.startswith("ce-")}
    missing = [name for name in REQUIRED_ATTRIBUTES if not given.get(name)]
    if missing:
        raise InvalidEvent(f"missing required attribute{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    try:
        return http.from_http(http.HTTPMessage(headers=lowered, body=body), _FORMAT)
    except BaseCloudEventException as error:
        problems = getattr(error, "errors", None)
        if isinstance(problems, dict) and problems:
            details = "; ".join(f"{name}: {', '.join(str(e) for e in errors)}" for name, errors in problems.items())
            raise InvalidEvent(f"invalid CloudEvent attributes: {details}") from error
        raise InvalidEvent(f"invalid CloudEvent: {error}") from error
    except ValueError as error:
        raise InvalidEvent(f"malformed CloudEvent: {error}") from error


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def ingress_routes(config: IngressConfig, producer: KafkaProducer) -> list[web.RouteDef]:
    async def receive(request: web.Request) -> web.Response:
        key = f"{request.match_info['namespace']}/{request.match_info['broker']}"
        topic = config.brokers.get(key)
        if topic is None:
            known = ", ".join(sorted(config.brokers)) or "none"
            return web.json_response(error_body("no_broker", f"no Broker {key}; known: {known}"), status=404)
        try:
            event = parse_event(dict(request.headers), await request.read())
        except InvalidEvent as error:
            return web.json_response(error_body("invalid_event", str(error)), status=400)
        record = kafka.to_binary(event, _FORMAT)  # key: the partitionkey extension, if any
        key_bytes = record.key.encode() if isinstance(record.key, str) else record.key
        pending = producer.send(topic, value=record.value, key=key_bytes, headers=list(record.headers.items()))
        try:
            await asyncio.get_running_loop().run_in_executor(None, pending.get, 10)
        except KafkaError as error:
            message = f"Kafka did not take the event: {error}; try again"
            return web.json_response(error_body("unavailable", message), status=503)
        return web.Response(status=202)

    return [web.post("/{namespace}/{broker}", receive)]


async def serve(config: IngressConfig, port: int) -> None:
    stopping = adapter.until_signalled()
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers.split(","), acks="all", linger_ms=0)
    runner = await adapter.serve(port, routes=ingress_routes(config, producer), max_body=4 * 2**20)
    log.info("Broker ingress for %s", ", ".join(f"{k} -> {t}" for k, t in config.brokers.items()))
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        producer.close()


def main() -> None:
    adapter.main(CONFIG_ENV, IngressConfig.from_json, serve, "ingress")


if __name__ == "__main__":
    main()
