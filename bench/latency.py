"""Send -> display latency of danmaku comments, end to end.

A sender emits comments over Socket.IO at a fixed rate; several listener processes,
joined to the same room, note when each comment arrives as a `danmaku` event. Latency =
arrival - send, on the machine's monotonic clock (shared by all processes on Linux).
Every comment takes the whole path: web -> Kafka -> KafkaSource -> processor -> web ->
every listener.

    python bench/latency.py                       # starts the app with `knit dev`
    python bench/latency.py --url http://127.0.0.1:PORT/   # a running app: danmaku-web's
                                                  # address from `knit service describe danmaku-web`

Without --url, the app runs with its per-sender rate limit raised (the sender is one
client sending far faster than a person). Results: a table, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import socketio

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def listen(url: str, room: str, count: int, timeout: float, ready, results) -> None:
    """One listener process: join the room, note each comment's arrival time."""
    arrivals: dict[int, float] = {}
    done = multiprocessing.Event()
    client = socketio.Client()

    @client.on("danmaku")
    def on_danmaku(comment: dict) -> None:
        arrivals[int(comment["text"].rsplit("#", 1)[1])] = time.monotonic()
        if len(arrivals) >= count:
            done.set()

    client.connect(url, transports=["websocket"])
    client.call("join", {"room": room}, timeout=10)
    ready.release()
    done.wait(timeout)
    client.disconnect()
    results.put(arrivals)


def run_once(url: str, comments: int, listeners: int, rate: float, timeout: float) -> dict:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ready, results = context.Semaphore(0), context.Queue()
    workers = [
        context.Process(target=listen, args=(url, room, comments, timeout, ready, results)) for _ in range(listeners)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        if not ready.acquire(timeout=30):
            raise SystemExit("a listener could not join the room within 30 s")

    sender = socketio.Client()
    sender.connect(url, transports=["websocket"])
    sender.call("join", {"room": room}, timeout=10)
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    start = time.monotonic()
    for n in range(comments):
        time.sleep(max(0.0, start + n / rate - time.monotonic()))  # open loop: a fixed schedule
        sent[n] = time.monotonic()
        sender.emit(
            "send", {"room": room, "text": f"bench #{n}"},
            callback=lambda reply, n=n: acked.__setitem__(n, time.monotonic()) if reply.get("ok") else None,
        )  # fmt: skip
    arrivals = [results.get(timeout=timeout + 30) for _ in workers]
    for worker in workers:
        worker.join(10)
    sender.disconnect()

    latencies = [(at - sent[n]) * 1000 for listener in arrivals for n, at in listener.items()]
    expected = comments * listeners
    return {
        "deliveries": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "ack_p50_ms": percentile([(acked[n] - sent[n]) * 1000 for n in acked], 50),
        "acked": len(acked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running danmaku-web (default: start the app with knit dev)")
    parser.add_argument("--comments", type=int, default=500, help="comments per run (default 500)")
    parser.add_argument("--listeners", type=int, default=8, help="listening Socket.IO clients (default 8)")
    parser.add_argument("--rate", type=float, default=50.0, help="comments per second sent (default 50)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians and spread are reported (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take to deliver")
    args = parser.parse_args()

    dev = None
    url = args.url
    if url is None:
        from knit.testing.harness import KnitDev

        env = {
            **os.environ,
            "DANMAKU_WEB_RATE_LIMIT_PER_SECOND": str(args.rate * 2),
            "DANMAKU_WEB_RATE_LIMIT_BURST": str(args.comments),
        }
        dev = KnitDev(ROOT / "manifests" / "app", cwd=Path(tempfile.mkdtemp(prefix="bench-")), env=env)
        dev.wait_ready()
        url = dev.address("danmaku-web") + "/"  # through the gateway; Python cannot resolve *.localhost
        print(f"app started by knit dev; danmaku-web at {url} (log: {dev.log_path})")
    try:
        runs = []
        for number in range(1, args.runs + 1):
            result = run_once(url, args.comments, args.listeners, args.rate, args.timeout)
            runs.append(result)
            print(
                f"run {number}: {result['deliveries']} deliveries ({result['missing']} missing)  "
                f"p50 {result['p50_ms']:.1f} ms  p90 {result['p90_ms']:.1f}  p99 {result['p99_ms']:.1f}  "
                f"max {result['max_ms']:.1f}  (Kafka ack p50 {result['ack_p50_ms']:.1f} ms)"
            )
    finally:
        if dev:
            dev.stop()

    summary = {
        key: {"median": statistics.median(r[key] for r in runs), "min": min(r[key] for r in runs),
              "max": max(r[key] for r in runs)}
        for key in ("p50_ms", "p99_ms", "max_ms", "ack_p50_ms")
    }  # fmt: skip
    print(
        f"\nsend -> display over {args.runs} runs of {args.comments} comments x {args.listeners} listeners "
        f"at {args.rate:g}/s: p50 {summary['p50_ms']['median']:.1f} ms "
        f"[{summary['p50_ms']['min']:.1f}-{summary['p50_ms']['max']:.1f}], "
        f"p99 {summary['p99_ms']['median']:.1f} ms [{summary['p99_ms']['min']:.1f}-{summary['p99_ms']['max']:.1f}]"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"latency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
