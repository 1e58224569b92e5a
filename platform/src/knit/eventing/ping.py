"""The PingSource adapter: a CloudEvent to the sink at every tick of a cron schedule.

Each event is Knative's: type `dev.knative.sources.ping`, source
`/apis/v1/namespaces/<ns>/pingsources/<name>`, a fresh id, the tick's time, and the
source's data (`data`, or `dataBase64` decoded) with its `contentType`. Delivery retries
as any knit sender does. Run as `python -m knit.eventing.ping` with PingConfig as JSON
in KNIT_PINGSOURCE.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import aiohttp
from cloudevents.core.v1.event import CloudEvent
from croniter import croniter

from knit.durations import parse_duration
from knit.eventing import adapter, conversion
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.sender import Sender, token_file

CONFIG_ENV = "KNIT_PINGSOURCE"
PING_EVENT_TYPE = "dev.knative.sources.ping"
log = logging.getLogger("knit.ping")


@dataclass(frozen=True)
class PingConfig:
    name: str
    namespace: str
    schedule: str
    sink: str
    timezone: str | None = None
    content_type: str | None = None
    data: str | None = None
    data_base64: str | None = None
    ce_extensions: dict[str, str] = field(default_factory=dict)
    delivery: DeliveryPolicy = field(default_factory=lambda: DeliveryPolicy(retry=5, backoff_delay=0.2))
    identity: str | None = None  # who it sends as
    sink_token_file: str | None = None  # its token for the sink's audience, if the sink has one

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PingConfig:
        data = json.loads(text)
        data["delivery"] = DeliveryPolicy(**data["delivery"])
        return cls(**data)


EVERY = "@every "


def next_tick(config: PingConfig, after: datetime) -> datetime:
    """The schedule's next time after `after`: a 5-field cron or a descriptor (@hourly,
    @daily, …) in the source's time zone, or `@every <duration>` from `after` on, as the
    cron library behind Knative's PingSource reads them."""
    if config.schedule.startswith(EVERY):
        return after + timedelta(seconds=parse_duration(config.schedule.removeprefix(EVERY)))
    zone: tzinfo = ZoneInfo(config.timezone) if config.timezone else datetime.now().astimezone().tzinfo or UTC
    return croniter(config.schedule, after.astimezone(zone)).get_next(datetime)


def ping_event(config: PingConfig, at: datetime) -> CloudEvent:
    attributes: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "type": PING_EVENT_TYPE,
        "source": f"/apis/v1/namespaces/{config.namespace}/pingsources/{config.name}",
        "time": at.astimezone(UTC),
        **config.ce_extensions,
    }
    if config.content_type:
        attributes["datacontenttype"] = config.content_type
    data = base64.b64decode(config.data_base64) if config.data_base64 else (config.data or "").encode()
    return CloudEvent(attributes, data or None)


async def run(config: PingConfig, stopping: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        sender = Sender(session, config.delivery)
        token = token_file(config.sink_token_file)
        tick = next_tick(config, datetime.now(UTC))
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), max(0.0, tick.timestamp() - time.time()))
                return
            except TimeoutError:
                pass
            message = conversion.from_event(ping_event(config, tick))
            what = f"ping at {tick.isoformat()}"
            outcome = await sender.deliver(config.sink, message.headers, message.body, what, token)
            if not outcome.ok:
                log.error("the ping of %s was not delivered: %s", tick.isoformat(), outcome.reason)
            tick = next_tick(config, tick)


async def serve(config: PingConfig, port: int) -> None:
    stopping = adapter.until_signalled()
    runner = await adapter.serve(port)
    log.info("PingSource %s/%s: %s -> %s", config.namespace, config.name, config.schedule, config.sink)
    try:
        await run(config, stopping)
    finally:
        await runner.cleanup()


def main() -> None:
    adapter.main(CONFIG_ENV, PingConfig.from_json, serve, "PingSource")


if __name__ == "__main__":
    main()
