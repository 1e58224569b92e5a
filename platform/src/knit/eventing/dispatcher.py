"""The dispatcher of a KafkaSource or a Trigger: consumes a consumer group's records and
POSTs each one to the sink as a CloudEvent (binary content mode), at least once.

An offset is committed only after its record was delivered (2xx) or given up on, so a
crash re-delivers what was not finished. `ordered` delivers one record at a time per
partition, in order; `unordered` delivers up to `max_in_flight` at once and still commits
only below the lowest unfinished offset. Failures are retried by the DeliveryPolicy; an
event given up on goes to the dead-letter sink with Knative's knativeerror* extensions,
or is dropped with a log line saying so. A Trigger's dispatcher skips the events its
filter rejects and sends its subscriber's reply events back to the Broker.

A new consumer group first commits its starting offsets (latest or earliest), as
Knative's control plane does, so no event sent after the dispatcher is ready is missed.

The Kafka client is not thread-safe and blocks, so it lives on one dedicated thread; the
deliveries run on the asyncio loop. Run as `python -m knit.eventing.dispatcher` with its
configuration (DispatcherConfig as JSON) in the environment variable KNIT_KAFKASOURCE.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import aiohttp
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, generate_latest

from knit.eventing import adapter, conversion
from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.filters import compile_trigger_filter
from knit.eventing.offsets import PartitionOffsets
from knit.eventing.sender import Outcome, Sender, error_extensions, token_file
from knit.kafka.settings import CONSUMER_GROUP_SETTINGS, KafkaUnavailable, wait_until_reachable

CONFIG_ENV = "KNIT_KAFKASOURCE"
# A commit waits this long at most: the poll loop (and with it /readyz) must not stall for
# the client's 30 s request timeout when the broker has just gone away.
COMMIT_TIMEOUT_MS = 5000
log = logging.getLogger("knit.dispatcher")
T = TypeVar("T")


@dataclass(frozen=True)
class DispatcherConfig:
    """Everything one dispatcher needs, with references already resolved to URLs."""

    name: str
    namespace: str
    bootstrap_servers: str
    topics: tuple[str, ...]
    consumer_group: str
    sink: str
    initial_offset: str = "latest"
    ordering: str = "ordered"
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    dead_letter_sink: str | None = None
    ce_extensions: dict[str, str] = field(default_factory=dict)
    max_in_flight: int = 100  # unordered: deliveries at once; both: records buffered per partition
    # A Trigger is a dispatcher with a filter, whose subscriber's replies go back to its Broker.
    kind: str = "KafkaSource"
    filter_attributes: dict[str, str] | None = None
    filters: list[dict[str, Any]] | None = None
    reply: str | None = None
    # Sender identity: who this dispatcher sends as, and the files holding its token for
    # each destination that has an audience (None: send no token).
    identity: str | None = None
    sink_token_file: str | None = None
    dead_letter_sink_token_file: str | None = None
    reply_token_file: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DispatcherConfig:
        data = json.loads(text)
        data["topics"] = tuple(data["topics"])
        data["delivery"] = DeliveryPolicy(**data["delivery"])
        return cls(**data)


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class _Lane:
    """One assigned partition: its buffered records and which of them finished."""

    queue: asyncio.Queue[conversion.Record] = field(default_factory=asyncio.Queue)
    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    committed: int | None = None
    paused: bool = False
    next_offset: int = 0  # the offset after the last record accepted
    # Cleared while a rebalance decides whether this partition stays: nothing new starts.
    may_start: asyncio.Event = field(default_factory=_set_event)

    def to_commit(self) -> int | None:
        """The offset to commit next, if it moved since the last commit."""
        position = self.offsets.committable()
        return None if position == self.committed else position


def _forget_parked_records(consumer: KafkaConsumer, tp: TopicPartition) -> None:
    """Work around kafka-python 3.0.12: records fetched for a partition while it was paused
    are parked, and its fetcher puts them back only while no other partition's records sit
    in its in-line slot; until then it never fetches that partition again, so a resumed
    partition can stall for good. Dropping them (the caller then seeks to the first record
    it does not have) makes the next fetch read them again."""
    fetcher = getattr(consumer, "_fetcher", None)
    for parked in (
        getattr(fetcher, "_paused_partition_records", None),
        getattr(fetcher, "_paused_completed_fetches", None),
    ):
        if isinstance(parked, dict):
            parked.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, dispatcher: KafkaSourceDispatcher) -> None:
        self.dispatcher = dispatcher

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.dispatcher._on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.dispatcher._on_assigned(list(assigned))


class KafkaSourceDispatcher:
    def __init__(self, config: DispatcherConfig) -> None:
        self.config = config
        self.ready = False
        self.not_ready_reason = f"connecting to Kafka at {config.bootstrap_servers}"
        self.registry = CollectorRegistry()
        self.events = Counter(
            "knit_dispatcher_events", "Events by what became of them", ("outcome",), registry=self.registry
        )
        self._matches = (
            compile_trigger_filter(config.filter_attributes, config.filters)
            if config.filter_attributes or config.filters
            else None
        )
        self._sender: Sender | None = None
        self._sink_token = token_file(config.sink_token_file)
        self._dead_letter_token = token_file(config.dead_letter_sink_token_file)
        self._reply_token = token_file(config.reply_token_file)
        self._just_assigned: list[TopicPartition] | None = None
        self._assigned_once = False
        self._next_probe = 0.0  # when to check next that the broker still answers
        self._reachable = True
        self._lanes: dict[TopicPartition, _Lane] = {}
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix="kafka")
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: KafkaConsumer | None = None
        self._http: aiohttp.ClientSession | None = None

    # --- the Kafka side (everything that touches the consumer runs on its thread) -----

    async def _on_kafka_thread(self, function: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._kafka_thread, function, *args)

    def _new_consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap_servers.split(","),
            group_id=self.config.consumer_group,
            client_id=f"knit-kafkasource-{self.config.name}",
            enable_auto_commit=False,
            auto_offset_reset=self.config.initial_offset,
            max_poll_records=500,
            # A topic created after the dispatcher started is seen within seconds.
            metadata_max_age_ms=5000,
            **CONSUMER_GROUP_SETTINGS,
        )
        consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
        # Learn the topics' partitions before the first poll joins the group: kafka-python
        # otherwise joins with no metadata and, once it arrives, rejoins at once (Apache
        # Kafka answers the first join quickly enough for that to happen; Tansu does not),
        # and such a rejoin sometimes never completes. A metadata request after subscribing
        # gives the group coordinator the topics' partitions up front.
        consumer.topics()
        return consumer

    async def _connect(self, stopping: asyncio.Event) -> KafkaConsumer | None:
        """The consumer, once a broker answers; until then not ready, saying why, and retrying.
        A TCP check comes first: kafka-python's client blocks for 30 s before it gives up on
        an unreachable broker, and leaves a thread behind each time."""
        delay = 0.5
        servers = self.config.bootstrap_servers
        while not stopping.is_set():
            try:
                await self._on_kafka_thread(wait_until_reachable, servers, time.monotonic() + 1)
                return await self._on_kafka_thread(self._new_consumer)
            except (KafkaUnavailable, KafkaError) as error:
                self.not_ready_reason = f"Kafka at {servers} is unreachable ({error}); retrying"
                log.warning("%s in %.1fs", self.not_ready_reason, delay)
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 10.0)
        return None

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Runs on the Kafka client's IO thread, which must not block: note, and act after poll()."""
        self._just_assigned = list(assigned)
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in assigned) or "nothing")

    def _start_assigned(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """On the Kafka thread, after poll(), once partitions were (re)assigned:

        - a partition that stayed with this member keeps its lane: its held records go on
          and reading goes on after the last record it has, so a rebalance that leaves a
          partition where it was re-delivers none of it;
        - a partition this group never committed gets its starting offset committed now
          (the first record poll() returned, else where the reset policy put it), so
          "ready" means no later event is missed;
        - any other partition is read again from its commit point: records handed out
          before the rebalance may not have finished, and the client would go on past them.
        Lanes of partitions that went to another member are dropped.
        """
        assert self._consumer is not None and self._loop is not None
        assigned, self._just_assigned = self._just_assigned, None
        if assigned is None:
            return
        gone = [tp for tp in list(self._lanes) if tp not in assigned]
        asyncio.run_coroutine_threadsafe(self._release(gone), self._loop).result()
        # A partition paused for back-pressure before the rebalance would stay paused (and
        # keep its parked records) while nothing would ask for it again.
        self._consumer.resume(*assigned)
        start = {}
        for tp in assigned:
            _forget_parked_records(self._consumer, tp)
            lane = self._lanes.get(tp)
            if lane is not None:  # read on after the last record the lane has
                lane.paused = False
                lane.may_start.set()
                batch.pop(tp, None)
                self._consumer.seek(tp, lane.next_offset)
            elif (committed := self._consumer.committed(tp)) is not None:
                batch.pop(tp, None)
                self._consumer.seek(tp, committed)
            else:
                records = batch.get(tp)
                start[tp] = OffsetAndMetadata(records[0].offset if records else self._consumer.position(tp), "", -1)
        if start:
            try:
                self._consumer.commit(start)
            except KafkaError as error:  # the lanes commit these partitions as they deliver
                log.warning("committing the starting offsets failed (%s)", error)
        self.ready = self._assigned_once = True

    def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Runs on the Kafka client's IO thread: hold the lanes (deliveries under way finish,
        no new one starts, since another member may read these records next) and commit
        what finished, without blocking that thread. Whether a lane goes on or is dropped
        is decided once the new assignment is known (see _start_assigned)."""
        assert self._loop is not None and self._consumer is not None
        offsets = asyncio.run_coroutine_threadsafe(self._hold(revoked), self._loop).result()
        if offsets:
            self._consumer.commit_async(offsets)

    async def _hold(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        for tp in partitions:
            if (lane := self._lanes.get(tp)) is not None:
                lane.may_start.clear()
        return await self._committable(partitions)

    def _uncommitted(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if (lane := self._lanes.get(tp)) is not None:
                lane.committed = None

    async def _committable(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets = {}
        for tp in partitions:
            if (lane := self._lanes.get(tp)) is not None and (position := lane.to_commit()) is not None:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
        return offsets

    async def _release(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Drop the lanes of partitions this member no longer reads; what finished, to commit."""
        offsets = await self._committable(partitions)
        for tp in partitions:
            lane = self._lanes.pop(tp, None)
            for task in lane.tasks if lane else ():
                task.cancel()  # the new owner reads these records again: at least once
        return offsets

    def _check_reachable(self) -> None:
        """At most once a second, on the Kafka thread: does a broker still accept connections?
        kafka-python retries a lost broker on its own and says nothing to its caller, so
        without this a dispatcher whose broker died would stay ready."""
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + 1.0
        servers = self.config.bootstrap_servers
        try:
            wait_until_reachable(servers, now)
        except KafkaUnavailable as error:
            if self.ready:
                log.warning("Kafka at %s is unreachable; not ready until it answers again", servers)
            self.not_ready_reason = f"Kafka at {servers} is unreachable ({error}); retrying"
            self.ready = self._reachable = False
            return
        self._reachable = True
        if not self.ready and self._assigned_once:
            log.info("Kafka at %s answers again; ready", servers)
            self.ready = True

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        assert self._consumer is not None
        self._check_reachable()
        batch = self._consumer.poll(timeout_ms=100)
        self._start_assigned(batch)
        return batch

    def _commit_and_flow(
        self,
        offsets: dict[TopicPartition, OffsetAndMetadata],
        pause: list[TopicPartition],
        resume: list[tuple[TopicPartition, int]],
    ) -> None:
        assert self._consumer is not None and self._loop is not None
        if offsets and not self._reachable:  # a commit would block for the client's 30 s request timeout
            self._loop.call_soon_threadsafe(self._uncommitted, list(offsets))
        elif offsets:
            try:
                self._consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
            except KafkaError as error:  # e.g. a rebalance under way: commit again next time
                log.warning("committing %d offsets failed (%s); will retry", len(offsets), error)
                self._loop.call_soon_threadsafe(self._uncommitted, list(offsets))
        if pause:
            self._consumer.pause(*pause)
        for tp, offset in resume:
            self._consumer.resume(tp)
            _forget_parked_records(self._consumer, tp)
            self._consumer.seek(tp, offset)

    # --- the delivery side (asyncio) ---------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = await self._connect(stopping)
        if self._consumer is None:
            return
        connector = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        self._http = aiohttp.ClientSession(connector=connector)
        self._sender = Sender(self._http, self.config.delivery)
        try:
            while not stopping.is_set():
                try:
                    batch = await self._on_kafka_thread(self._poll)
                except KafkaError as error:
                    log.warning("poll failed: %s; retrying", error)
                    await asyncio.sleep(1)
                    continue
                for tp, records in batch.items():
                    self._accept(tp, records)
                await self._on_kafka_thread(self._commit_and_flow, *self._commits_and_flow())
            await self._drain(grace=10.0)
        finally:
            await self._on_kafka_thread(self._consumer.close, False)
            await self._http.close()
            self._kafka_thread.shutdown()

    def _accept(self, tp: TopicPartition, records: list[Any]) -> None:
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = _Lane()
            worker = self._ordered_lane if self.config.ordering == "ordered" else self._unordered_lane
            lane.tasks.add(asyncio.create_task(worker(lane)))
        for record in records:
            lane.offsets.started(record.offset)
            lane.next_offset = record.offset + 1
            lane.queue.put_nowait(
                conversion.Record(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                    key=record.key,
                    value=record.value,
                    headers=conversion.header_pairs(record.headers),
                )
            )

    def _commits_and_flow(
        self,
    ) -> tuple[dict[TopicPartition, OffsetAndMetadata], list[TopicPartition], list[tuple[TopicPartition, int]]]:
        offsets, pause, resume = {}, [], []
        for tp, lane in self._lanes.items():
            if (position := lane.to_commit()) is not None:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
                lane.committed = position
            buffered = lane.offsets.in_flight
            if not lane.paused and buffered >= self.config.max_in_flight * 5:
                lane.paused = True
                pause.append(tp)
            elif lane.paused and buffered <= self.config.max_in_flight:
                lane.paused = False
                resume.append((tp, lane.next_offset))
        return offsets, pause, resume

    async def _ordered_lane(self, lane: _Lane) -> None:
        while True:
            record = await lane.queue.get()
            await lane.may_start.wait()
            await self._deliver(record)
            lane.offsets.finished(record.offset)

    async def _unordered_lane(self, lane: _Lane) -> None:
        while True:
            record = await lane.queue.get()
            await lane.may_start.wait()
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver_in_slot(lane, record))
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    async def _deliver_in_slot(self, lane: _Lane, record: conversion.Record) -> None:
        try:
            await self._deliver(record)
            lane.offsets.finished(record.offset)
        finally:
            self._slots.release()

    async def _drain(self, grace: float) -> None:
        """On shutdown: let buffered records finish for a while, then commit what finished."""
        deadline = time.monotonic() + grace
        if under_way := sum(lane.offsets.in_flight for lane in self._lanes.values()):
            log.info("stopping: %d records under way get up to %gs to finish, then what finished is committed",
                     under_way, grace)  # fmt: skip
        while any(lane.offsets.in_flight for lane in self._lanes.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        offsets = await self._release(list(self._lanes))
        if offsets:
            await self._on_kafka_thread(self._commit_and_flow, offsets, [], [])

    async def _deliver(self, record: conversion.Record) -> None:
        """Deliver one record until it succeeds or is given up on; never raises, so one bad
        record cannot stop its partition."""
        try:
            await self._deliver_or_give_up(record)
        except conversion.InvalidRecord as error:
            log.error("skipping %s: %s", record.where, error)
            self.events.labels("invalid").inc()
        except Exception:
            log.exception("skipping %s: delivering it failed unexpectedly", record.where)
            self.events.labels("invalid").inc()

    async def _deliver_or_give_up(self, record: conversion.Record) -> None:
        assert self._sender is not None
        request = conversion.with_extensions(
            conversion.to_request(record, self.config.namespace, self.config.name), self.config.ce_extensions
        )
        if self._matches is not None and not self._matches(request.attributes):
            self.events.labels("filtered").inc()
            return
        outcome = await self._sender.deliver(
            self.config.sink, request.headers, request.body, record.where, self._sink_token
        )
        if outcome.ok:
            reply = outcome.reply() if self.config.reply else None
            if reply is None:
                self.events.labels("delivered").inc()
                return
            assert self.config.reply is not None
            outcome = await self._sender.deliver(self.config.reply, *reply, f"{record.where} reply", self._reply_token)
            if outcome.ok:
                self.events.labels("delivered").inc()
                return
        await self._give_up(request, outcome, record.where)

    async def _give_up(self, request: conversion.Request, outcome: Outcome, where: str) -> None:
        assert self._sender is not None
        reason = f"{outcome.reason} after {outcome.retries} retries"
        if self.config.dead_letter_sink:
            letter = conversion.with_extensions(request, error_extensions(outcome))
            sink = self.config.dead_letter_sink
            what = f"{where} to the dead-letter sink"
            dlq = await self._sender.deliver(sink, letter.headers, letter.body, what, self._dead_letter_token)
            if dlq.ok:
                log.warning("dead-lettered %s (event %s): %s", where, request.id, reason)
                self.events.labels("dead_lettered").inc()
                return
            reason += f"; the dead-letter sink failed too: {dlq.reason}"
        log.error("dropped %s (event %s): %s", where, request.id, reason)
        self.events.labels("dropped").inc()


async def run(config: DispatcherConfig, port: int) -> None:
    stopping = adapter.until_signalled()
    dispatcher = KafkaSourceDispatcher(config)
    runner = await adapter.serve(
        port,
        readiness=lambda: None if dispatcher.ready else dispatcher.not_ready_reason,
        metrics=lambda: generate_latest(dispatcher.registry),
    )
    topics = ",".join(config.topics)
    log.info("%s %s/%s: %s (group %s) -> %s%s", config.kind, config.namespace, config.name, topics,
             config.consumer_group, config.sink, f" as {config.identity}" if config.identity else "")  # fmt: skip
    try:
        await dispatcher.run(stopping)
    finally:
        await runner.cleanup()


def main() -> None:
    adapter.main(CONFIG_ENV, DispatcherConfig.from_json, run, "dispatcher")


if __name__ == "__main__":
    main()
