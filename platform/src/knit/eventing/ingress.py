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
import os
import signal
from dataclasses import asdict, dataclass, field

from aiohttp import web
from cloudevents.core.bindings import http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from kafka import KafkaProducer
from kafka.errors import KafkaError

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


def ingress_app(config: IngressConfig, producer: KafkaProducer) -> web.Application:
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

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=4 * 2**20)
    app.add_routes(
        [web.post("/{namespace}/{broker}", receive), web.get("/healthz", healthz), web.get("/readyz", healthz)]
    )
    return app


async def main_async(config: IngressConfig, port: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers.split(","), acks="all", linger_ms=0)
    runner = web.AppRunner(ingress_app(config, producer), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), port).start()
    log.info("Broker ingress for %s", ", ".join(f"{k} -> {t}" for k, t in config.brokers.items()))
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        producer.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise SystemExit(f"{CONFIG_ENV} is not set: it must hold the ingress configuration as JSON")
    asyncio.run(main_async(IngressConfig.from_json(raw), int(os.environ.get("PORT", "8080"))))


if __name__ == "__main__":
    main()
