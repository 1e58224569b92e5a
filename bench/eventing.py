"""Eventing: how many events per second one KafkaSource dispatcher process delivers, and
how long an event takes from produce to sink.

One dispatcher process (`python -m knit.eventing.dispatcher`, as the local runtime runs
it) reads a 4-partition topic from the embedded broker (or KAFKA_BOOTSTRAP_SERVERS) and
POSTs every record as a CloudEvent to a no-op sink: a raw asyncio HTTP/1.1 server in its
own process that answers 202 at once and notes arrival times (CLOCK_MONOTONIC, shared by
all processes on Linux). Each round measures:

- throughput, ordered (one event per partition at a time) and unordered (max_in_flight
  100): N small binary-mode CloudEvents produced beforehand, read by a fresh consumer
  group from the earliest offset; rate = deliveries / (last arrival - first arrival), so
  the group join is not counted;
- the raw consume rate of the same Kafka client with the dispatcher's settings
  (kafka-python KafkaConsumer, fresh group, poll() until N records), once just iterating
  and once committing after every poll as the dispatcher does: the ceiling the dispatcher
  could reach;
- latency at a fixed rate, ordered and unordered: records produced on a schedule carry
  their send time (extension `sentns`); latency = sink arrival - send, the first second
  left out as warm-up.

The CPU each process used during the throughput window is reported (share of one core),
and the dispatcher's threads separately, to show what saturates. `--profile` adds one
unordered run with the dispatcher under cProfile (its asyncio thread) and prints where
the time goes.

    python bench/eventing.py                        # 3 rounds, about 5 minutes
    python bench/eventing.py --rounds 5 --events 20000 --rate 500 --seconds 20
    python bench/eventing.py --rounds 1 --profile

Results: medians and ranges over the rounds, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import pstats
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
from _common import fmt, machine, percentile, save, spread
from kafka import KafkaConsumer, KafkaProducer

from knit.eventing.delivery import DeliveryPolicy
from knit.eventing.dispatcher import DispatcherConfig
from knit.host import die_with_parent, free_port
from knit.kafka.admin import ensure_topics
from knit.kafka.embedded import EmbeddedBroker
from knit.kafka.settings import BOOTSTRAP_ENV, CONSUMER_GROUP_SETTINGS
from knit.testing.harness import DispatcherProcess

PARTITIONS = 4
GOAL_UNORDERED = 3000.0  # events/s, on the 2-core development machine
DATA = b'{"room": "lobby", "text": "hello"}'

# The dispatcher runs as knit runs it (`python -m knit.eventing.dispatcher`), through this
# launcher so that --profile can run it under cProfile (its asyncio thread) and save the stats.
LAUNCHER = """
import cProfile, os, runpy, sys
module = sys.argv[sys.argv.index("-m") + 1]
sys.argv = [module]
profile = os.environ.get("BENCH_PROFILE")
if profile:
    profiler = cProfile.Profile()
    profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    profiler.dump_stats(profile)
else:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


# --- the no-op sink (its own process) ------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies_ms: list[float] = []


class _SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, Content-Length bodies only (what aiohttp's client sends)."""

    def __init__(self, stats: _Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if head.startswith(b"get /stats"):
                self._answer_stats()
            elif head.startswith(b"post /reset"):
                self.stats.__init__()  # type: ignore[misc]
                self.transport.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            else:
                self._note(head)
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    def _note(self, head: bytes) -> None:
        now = time.monotonic_ns()
        stats = self.stats
        stats.count += 1
        if stats.count == 1:
            stats.first = now / 1e9
        stats.last = now / 1e9
        at = head.find(b"\r\nce-sentns:")
        if at >= 0:
            end = head.find(b"\r\n", at + 2)
            sent = int(head[at + 12 : end if end > 0 else None])
            stats.latencies_ms.append((now - sent) / 1e6)

    def _answer_stats(self) -> None:
        stats = self.stats
        body = json.dumps(
            {"count": stats.count, "first": stats.first, "last": stats.last, "latencies_ms": stats.latencies_ms}
        ).encode()
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))  # fmt: skip


def serve_sink(port: int) -> None:
    die_with_parent()

    async def main() -> None:
        stats = _Stats()
        server = await asyncio.get_running_loop().create_server(lambda: _SinkProtocol(stats), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = multiprocessing.get_context("spawn").Process(target=serve_sink, args=(self.port,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Sink:
        self.process.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if time.monotonic() > deadline or not self.process.is_alive():
                    raise SystemExit("the sink process did not start") from None
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.join(10)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}stats", timeout=10) as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["count"] >= count:
                return stats
            if time.monotonic() > deadline:
                raise SystemExit(f"the sink got {stats['count']} of {count} events within {timeout:g}s")
            time.sleep(0.1)


# --- measuring -----------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by processes (and the dispatcher's threads) over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def sample(self) -> dict[str, Any]:
        now = {"wall": time.monotonic()}
        for name, process in self.processes.items():
            times = process.cpu_times()
            now[name] = times.user + times.system
        threads = self.processes["dispatcher"].threads()
        now["dispatcher_threads"] = {t.id: t.user_time + t.system_time for t in threads}
        return now

    @staticmethod
    def shares(start: dict[str, Any], end: dict[str, Any], main_tid: int) -> dict[str, Any]:
        wall = end["wall"] - start["wall"]
        result = {
            f"cpu_{name}": (end[name] - start[name]) / wall
            for name in start
            if name not in ("wall", "dispatcher_threads")
        }
        threads = {}
        for tid, spent in end["dispatcher_threads"].items():
            share = (spent - start["dispatcher_threads"].get(tid, 0.0)) / wall
            threads["asyncio (main)" if tid == main_tid else f"thread {tid}"] = share
        result["cpu_dispatcher_threads"] = dict(sorted(threads.items(), key=lambda item: -item[1]))
        return result


def produce_backlog(bootstrap: str, topic: str, count: int) -> float:
    """`count` small binary-mode CloudEvents, round robin over the partitions; the produce rate."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    started = time.monotonic()
    for n in range(count):
        headers = [("ce_specversion", b"1.0"), ("ce_id", f"bench-{n}".encode()), ("ce_type", b"dev.bench.event"),
                   ("ce_source", b"/bench"), ("content-type", b"application/json")]  # fmt: skip
        producer.send(topic, DATA, partition=n % PARTITIONS, headers=headers)
    producer.flush(120)
    elapsed = time.monotonic() - started
    producer.close(10)
    return count / elapsed


def dispatcher_config(bootstrap: str, topic: str, sink: str, ordering: str, group: str) -> DispatcherConfig:
    return DispatcherConfig(
        name="bench",
        namespace="default",
        bootstrap_servers=bootstrap,
        topics=(topic,),
        consumer_group=group,
        sink=sink,
        initial_offset="earliest",
        ordering=ordering,
        max_in_flight=100,
        delivery=DeliveryPolicy(retry=3, backoff_delay=0.05, timeout=30),
    )


def start_dispatcher(config: DispatcherConfig, log_path: Path, profile: Path | None = None) -> DispatcherProcess:
    env = {"BENCH_PROFILE": str(profile) if profile else ""}
    dispatcher = DispatcherProcess(config, log_path=log_path, env=env)
    return dispatcher.start(timeout=60, args=("-c", LAUNCHER))


def throughput(bootstrap: str, topic: str, sink: Sink, ordering: str, count: int, workdir: Path,
               broker_pid: int | None, profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    sink.reset()
    config = dispatcher_config(bootstrap, topic, sink.url, ordering, f"bench-{uuid.uuid4().hex[:8]}")
    dispatcher = start_dispatcher(config, workdir / f"dispatcher-{ordering}.log", profile)
    try:
        assert dispatcher.pid is not None
        pids = {"dispatcher": dispatcher.pid, "sink": sink.process.pid or 0}
        if broker_pid:
            pids["broker"] = broker_pid
        meter = CpuMeter(pids)
        while sink.stats()["count"] == 0:
            time.sleep(0.005)
        start = meter.sample()
        stats = sink.wait_for(count, timeout=120)
        end = meter.sample()
    finally:
        dispatcher.stop(timeout=60)
    rate = (stats["count"] - 1) / (stats["last"] - stats["first"])
    return {"events_per_s": rate, "delivered": stats["count"], "seconds": stats["last"] - stats["first"],
            **CpuMeter.shares(start, end, dispatcher.pid)}  # fmt: skip


def raw_consume(bootstrap: str, topic: str, count: int, commit: bool) -> dict[str, Any]:
    """The dispatcher's Kafka client and settings, doing nothing with the records."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500, metadata_max_age_ms=5000,
        **CONSUMER_GROUP_SETTINGS,
    )  # fmt: skip
    consumer.subscribe([topic])
    seen = 0
    first = last = 0.0
    deadline = time.monotonic() + 120
    try:
        while seen < count and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=100)
            if not batch:
                continue
            if not seen:
                first = time.monotonic()
            seen += sum(len(records) for records in batch.values())
            if commit:
                consumer.commit()
            last = time.monotonic()
    finally:
        consumer.close()
    if seen < count:
        raise SystemExit(f"raw consume read {seen} of {count} records within 120s")
    return {"events_per_s": seen / (last - first), "records": seen}


def latency(bootstrap: str, sink: Sink, ordering: str, rate: float, seconds: float, workdir: Path) -> dict[str, Any]:
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    sink.reset()
    config = dispatcher_config(bootstrap, topic, sink.url, ordering, f"bench-{uuid.uuid4().hex[:8]}")
    dispatcher = start_dispatcher(config, workdir / f"dispatcher-latency-{ordering}.log")
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    total = int(rate * seconds)
    behind = []
    try:
        producer.send(topic, DATA).get(10)  # connections and metadata before the clock starts
        sink.wait_for(1, timeout=30)
        sink.reset()
        started = time.monotonic()
        for n in range(total):
            planned = started + n / rate
            pause = planned - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            behind.append(max(0.0, -pause) * 1000)
            headers = [("ce_specversion", b"1.0"), ("ce_id", f"lat-{n}".encode()), ("ce_type", b"dev.bench.event"),
                       ("ce_source", b"/bench"), ("content-type", b"application/json"),
                       ("ce_sentns", str(time.monotonic_ns()).encode())]  # fmt: skip
            producer.send(topic, DATA, partition=n % PARTITIONS, headers=headers)
        producer.flush(30)
        stats = sink.wait_for(total, timeout=120)
    finally:
        producer.close(10)
        dispatcher.stop(timeout=60)
    measured = stats["latencies_ms"][int(rate) :]  # the first second is warm-up
    return {
        "p50_ms": percentile(measured, 50), "p90_ms": percentile(measured, 90), "p99_ms": percentile(measured, 99),
        "max_ms": max(measured), "events": len(measured), "delivered": stats["count"],
        "producer_behind_p99_ms": percentile(behind, 99),
    }  # fmt: skip


def print_profile(path: Path, top: int = 25) -> None:
    print(f"\ncProfile of the dispatcher's asyncio thread (one unordered run): {path}")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- the run ---------------------------------------------------------------------------------------------


def summarize(rounds: list[dict[str, Any]], args: argparse.Namespace, produce_rate: float) -> dict[str, Any]:
    def over(*path: str) -> dict[str, float]:
        values = []
        for result in rounds:
            value: Any = result
            for key in path:
                value = value[key]
            values.append(value)
        return spread(values)

    summary: dict[str, Any] = {"produce_rate": produce_rate}
    print(f"\neventing over {len(rounds)} rounds: median [range]; {args.events} events of {len(DATA)} bytes, "
          f"{PARTITIONS} partitions; backlog produced at {produce_rate:,.0f}/s")  # fmt: skip
    raw = summary["raw_consume"] = over("raw_iterate", "events_per_s")
    raw_commit = summary["raw_consume_commit"] = over("raw_commit", "events_per_s")
    print(f"  raw consume, iterating:            {fmt(raw, 'events/s', 0)}")
    print(f"  raw consume, commit after each poll: {fmt(raw_commit, 'events/s', 0)}")
    for ordering in ("ordered", "unordered"):
        rate = summary[f"{ordering}_events_per_s"] = over(ordering, "events_per_s")
        cpu = {name: over(ordering, f"cpu_{name}")["median"] for name in ("dispatcher", "sink", "broker")
               if f"cpu_{name}" in rounds[0][ordering]}  # fmt: skip
        summary[f"{ordering}_cpu"] = cpu
        cpu_text = ", ".join(f"{name} {share:.0%}" for name, share in cpu.items())
        print(f"  {ordering:9} dispatcher -> sink:    {fmt(rate, 'events/s', 0)} "
              f"({rate['median'] / raw['median']:.1%} of raw; CPU of one core: {cpu_text})")  # fmt: skip
        print(f"            dispatcher threads (last round): {format_threads(rounds[-1][ordering])}")
    goal = summary["unordered_events_per_s"]["median"]
    summary["goal_met"] = goal >= GOAL_UNORDERED
    print(f"  goal >= {GOAL_UNORDERED:,.0f} events/s unordered: {'met' if summary['goal_met'] else 'NOT met'} "
          f"(median {goal:,.0f})")  # fmt: skip
    print(f"  latency at {args.rate:g} events/s for {args.seconds:g} s (first second left out):")
    for ordering in ("ordered", "unordered"):
        stats = {q: over(f"latency_{ordering}", f"{q}_ms") for q in ("p50", "p90", "p99")}
        summary[f"latency_{ordering}"] = stats
        print(f"    {ordering:9} p50 {fmt(stats['p50'])}, p90 {fmt(stats['p90'])}, p99 {fmt(stats['p99'])}")
    return summary


def describe_round(result: dict[str, Any]) -> str:
    latencies = ", ".join(
        f"{o} {result[f'latency_{o}']['p50_ms']:.1f}/{result[f'latency_{o}']['p99_ms']:.1f} ms"
        for o in ("ordered", "unordered")
    )
    return (
        f"raw {result['raw_iterate']['events_per_s']:,.0f}/s "
        f"(with commits {result['raw_commit']['events_per_s']:,.0f}/s), "
        f"ordered {result['ordered']['events_per_s']:,.0f}/s, unordered {result['unordered']['events_per_s']:,.0f}/s; "
        f"latency p50/p99 {latencies}"
    )


def format_threads(result: dict[str, Any]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in list(result["cpu_dispatcher_threads"].items())[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians and ranges are reported (default 3)")
    parser.add_argument("--events", type=int, default=20000, help="backlog for the throughput runs (default 20000)")
    parser.add_argument("--rate", type=float, default=500, help="events/s for the latency runs (default 500)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per latency run (default 20)")
    parser.add_argument("--profile", action="store_true", help="add one unordered run under cProfile")
    args = parser.parse_args()
    if args.rounds < 1 or args.events < 100 or args.seconds < 2:
        parser.error("--rounds must be at least 1, --events at least 100, --seconds at least 2")

    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="bench-eventing-"))
    external = os.environ.get(BOOTSTRAP_ENV)
    broker = None if external else EmbeddedBroker(workdir / "kafka.log")
    bootstrap = external or broker.start()  # type: ignore[union-attr]
    info["kafka"] = external or f"embedded Tansu at {bootstrap}"
    print(f"kafka: {info['kafka']}; logs in {workdir}")
    rounds = []
    try:
        with Sink() as sink:
            topic = f"bench-backlog-{uuid.uuid4().hex[:8]}"
            ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
            produce_rate = produce_backlog(bootstrap, topic, args.events)
            broker_pid = broker.pid if broker else None
            for number in range(1, args.rounds + 1):
                result: dict[str, Any] = {}
                result["raw_iterate"] = raw_consume(bootstrap, topic, args.events, commit=False)
                result["raw_commit"] = raw_consume(bootstrap, topic, args.events, commit=True)
                for ordering in ("ordered", "unordered") if number % 2 else ("unordered", "ordered"):
                    result[ordering] = throughput(bootstrap, topic, sink, ordering, args.events, workdir, broker_pid)
                for ordering in ("ordered", "unordered"):
                    result[f"latency_{ordering}"] = latency(bootstrap, sink, ordering, args.rate, args.seconds, workdir)
                rounds.append(result)
                print(f"round {number}: " + describe_round(result), flush=True)
            profile = None
            if args.profile:
                profile = workdir / "dispatcher-unordered.prof"
                profiled = throughput(bootstrap, topic, sink, "unordered", args.events, workdir, broker_pid, profile)
                print(f"profiled unordered run: {profiled['events_per_s']:,.0f} events/s under cProfile; "
                      f"threads {format_threads(profiled)}")  # fmt: skip
    finally:
        if broker:
            broker.stop()

    summary = summarize(rounds, args, produce_rate)
    if profile:
        summary["profile"] = str(profile)
        print_profile(profile)
    save("eventing", {"args": vars(args), "machine": info, "rounds": rounds, "summary": summary})


if __name__ == "__main__":
    main()
