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
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings import http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaProducer
from kafka.errors import KafkaError

from knit.eventing import adapter, jsonlimits

CONFIG_ENV = "KNIT_INGRESS"
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
MAX_BODY = 4 * 2**20  # bytes: the largest event a Broker takes, however it is sent
log = logging.getLogger("knit.ingress")


class _Format(JSONFormat):
    """The SDK's JSON format, with the data of a binary-mode event parsed by jsonlimits."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> Any:
        if body and self.JSON_CONTENT_TYPE_PATTERN.match(datacontenttype or self.DEFAULT_CONTENT_TYPE):
            jsonlimits.loads(body)  # TooDeep (a ValueError) before the SDK's parser recurses
        return super().read_data(body, datacontenttype)


_FORMAT = _Format()


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


def parse_event(headers: dict[str, str], body: bytes) -> CloudEvent:
    """A CloudEvent from an HTTP request; InvalidEvent names what is missing or wrong.

    Whatever a client sends, the answer is an event or InvalidEvent (a 400): JSON is parsed
    by jsonlimits, and what the SDK would fail on with TypeError, or accept though no
    CloudEvent has it (an attribute holding an object), is checked first.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    structured = lowered.get("content-type", "").lower().startswith("application/cloudevents+json")
    if "ce-specversion" not in lowered and not structured:
        raise InvalidEvent(
            "not a CloudEvent: send ce-specversion, ce-id, ce-source and ce-type headers (binary mode) "
            "or Content-Type application/cloudevents+json (structured mode)"
        )
    # The SDK makes up an id (and a time) when none is given; an ingress must not.
    if structured:
        given = _structured_attributes(body)
    else:
        given = {name.removeprefix("ce-"): value for name, value in lowered.items() if name.startswith("ce-")}
    missing = [name for name in REQUIRED_ATTRIBUTES if not given.get(name)]
    if missing:
        raise InvalidEvent(f"missing required attribute{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if given["specversion"] != "1.0":
        raise InvalidEvent(f"invalid CloudEvent: specversion must be 1.0; got {_shown(given['specversion'])}")
    message = http.HTTPMessage(headers=lowered, body=body)
    try:
        if structured:
            event = http.from_structured(message, _FORMAT, CloudEvent)
        else:
            event = http.from_binary(message, _FORMAT, CloudEvent)
    except BaseCloudEventException as error:
        problems = getattr(error, "errors", None)
        if isinstance(problems, dict) and problems:
            details = "; ".join(f"{name}: {', '.join(str(e) for e in errors)}" for name, errors in problems.items())
            raise InvalidEvent(f"invalid CloudEvent attributes: {details}") from error
        raise InvalidEvent(f"invalid CloudEvent: {error}") from error
    except ValueError as error:  # JSON nested too deeply, a bad time or base64, ...
        raise InvalidEvent(f"malformed CloudEvent: {error}") from error
    if "time" not in given:
        event.get_attributes().pop("time", None)  # made up by the SDK: the event had none
    return event


def _structured_attributes(body: bytes) -> dict[str, Any]:
    try:
        given = jsonlimits.loads(body)
    except jsonlimits.TooDeep as error:
        raise InvalidEvent(f"malformed CloudEvent: {error}") from None
    except ValueError as error:
        raise InvalidEvent(f"malformed CloudEvent: the body is not JSON ({error})") from error
    if not isinstance(given, dict):
        raise InvalidEvent(f"malformed CloudEvent: a structured event is a JSON object; got {type(given).__name__}")
    for name, value in given.items():
        if name in ("data", "data_base64"):
            continue
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidEvent(
                f"invalid CloudEvent: attribute name {_shown(name)} must be lowercase letters and digits"
            )
        # The CloudEvents type system has strings, integers and booleans (in JSON).
        if value is not None and not isinstance(value, str | int):
            raise InvalidEvent(
                f"invalid CloudEvent: attribute {name} must be a string, integer or boolean; got {type(value).__name__}"
            )
    for name in ("time", "data_base64"):
        if name in given and not isinstance(given[name], str):
            raise InvalidEvent(f"malformed CloudEvent: {name} must be a string; got {type(given[name]).__name__}")
    return given


def _shown(value: Any) -> str:
    """A client's value, quoted and cut short for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


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
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # announced or not (chunked): aiohttp stops reading at the limit
            message = f"the event is larger than {request.client_max_size} bytes; send a smaller one"
            return web.json_response(error_body("request_entity_too_large", message), status=413)
        try:
            event = parse_event(dict(request.headers), body)
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
    runner = await adapter.serve(port, routes=ingress_routes(config, producer), max_body=MAX_BODY)
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
