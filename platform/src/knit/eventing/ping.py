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
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from cloudevents.core.v1.event import CloudEvent
from croniter import croniter

from knit.durations import parse_duration
from knit.eventing import adapter, conversion
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.sender import Sender, TokenFile, token_file

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
_LOCALTIME = Path("/etc/localtime")


def schedule_zone(timezone: str | None) -> tzinfo:
    """The zone a schedule is read in: the source's IANA zone, else this machine's (TZ, then
    /etc/localtime, then UTC), with its daylight-saving rules rather than today's offset."""
    if timezone:
        return ZoneInfo(timezone)
    local = os.environ.get("TZ", "").removeprefix(":")
    if local:
        try:
            return ZoneInfo(local)
        except (ValueError, ZoneInfoNotFoundError):
            pass
    try:
        with _LOCALTIME.open("rb") as rules:
            return ZoneInfo.from_file(rules)
    except (OSError, ValueError):
        return UTC


def next_fire(schedule: str, zone: tzinfo, after: datetime) -> datetime:
    """The schedule's first fire time after `after` (an aware datetime), as robfig/cron,
    the library behind Knative's PingSource, computes it:

    - `@every <d>`: `after` cut to the whole second, plus `d` cut to whole seconds, in UTC;
    - a 5-field cron or a descriptor (@hourly, @daily, …), read on the wall clock of `zone`:
      a time the clock skips when daylight saving starts never fires (`0 2 * * *` in
      Europe/Berlin skips the last Sunday of March), and a time it shows twice when
      daylight saving ends fires twice (`30 1 * * *` in America/New_York, first Sunday of
      November: 01:30 EDT and 01:30 EST). croniter moves a skipped time to the next real
      one (03:00), so those results are passed over.
    """
    if schedule.startswith(EVERY):
        interval = max(1, int(parse_duration(schedule.removeprefix(EVERY))))
        return after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=interval)  # real time, not wall
    times = croniter(schedule, after.astimezone(zone))
    for _ in range(100):  # one skip per daylight-saving change at most; bounded all the same
        candidate: datetime = times.get_next(datetime)
        if croniter.match(schedule, candidate.replace(tzinfo=None)):
            return candidate
    raise ValueError(f"the schedule {schedule!r} names no time that exists in {zone} after {after.isoformat()}")


def after_firing(schedule: str, zone: tzinfo, tick: datetime, now: datetime) -> datetime:
    """The tick after `tick`, which fired at `now`: counted from the later of the two, as
    robfig/cron does, so ticks missed while the process could not run (a machine asleep)
    are skipped rather than sent late in a burst, and an early wake-up never repeats `tick`."""
    return next_fire(schedule, zone, max(tick, now))


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
    """Send the ping event at each tick until `stopping` is set. Each tick's delivery runs on
    its own, as robfig/cron runs each job, so a slow or failing sink never holds the schedule;
    deliveries under way when it stops finish first (Knative's runner waits for them too)."""
    zone = schedule_zone(config.timezone)
    sending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as session:
        sender = Sender(session, config.delivery)
        token = token_file(config.sink_token_file)
        tick = next_fire(config.schedule, zone, datetime.now(UTC))
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), max(0.0, (tick - datetime.now(UTC)).total_seconds()))
                break
            except TimeoutError:
                pass
            delivery = asyncio.create_task(_send(sender, config, tick, token))
            sending.add(delivery)
            delivery.add_done_callback(sending.discard)
            tick = after_firing(config.schedule, zone, tick, datetime.now(UTC))
        if sending:
            log.info("stopping: %d ping(s) under way finish first", len(sending))
            await asyncio.wait(sending)


async def _send(sender: Sender, config: PingConfig, tick: datetime, token: TokenFile | None) -> None:
    message = conversion.from_event(ping_event(config, tick))
    outcome = await sender.deliver(config.sink, message.headers, message.body, f"ping at {tick.isoformat()}", token)
    if not outcome.ok:
        log.error("the ping of %s was not delivered: %s", tick.isoformat(), outcome.reason)


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
