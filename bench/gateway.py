"""Gateway overhead: the latency the gateway adds to a request, and the throughput it keeps.

One instance of knit's sample app (gunicorn gthread, min-scale 1, max-scale 1, no sleep)
runs under `knit dev`. A load generator in its own process (asyncio, raw HTTP/1.1 on
keep-alive connections, so the benchmark's client costs little CPU) sends the same
requests to it twice per round: directly at the instance's address (describe()'s
revisions[0].instances[0].address) and through the gateway (Host header); the two
alternate which goes first, so both see the same machine noise.

- Open loop: requests leave on a fixed schedule (default 200 and 500 req/s, 3000 requests
  each after a 1 s warm-up) over several connections; latency is taken from the moment a
  request is written until its response is read (how late the schedule ran is reported
  too, with latency counted from the planned send time in the JSON).
  Added latency = through - direct, paired by round, for p50, p95 and p99.
- Closed loop: N connections send back to back for 10 s, for N = 4 and 16; a path's
  maximum throughput is its best N. Reported: gateway / direct, paired by round, and the
  CPU that the client, `knit dev` (the gateway) and the instance used meanwhile. The best
  N differs by path: gunicorn's gthread worker spends more CPU per request when it holds
  more connections than its 8 threads, so direct can fall behind the gateway at N = 16.

    python bench/gateway.py                   # 3 rounds, about 5 minutes
    python bench/gateway.py --rates 200,500,1000 --rounds 5

Results: medians and ranges over the rounds, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from urllib.parse import urlsplit

import psutil
from _common import Knit, fmt, host_of, machine, percentile, sample_service, save, spread

SERVICE = "gateway-bench"
GOALS_MS = {"p50": 1.0, "p99": 5.0}  # added latency
KNATIVE_ACTIVATOR_P95_MS = 10.0


# --- the load generator (runs in its own process) -----------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection sending the same GET again and again."""

    def __init__(self, address: tuple[str, int], request: bytes) -> None:
        self.address, self.request = address, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, timeout: float) -> int:
        """Send the request and read the whole response; its status, or 0 on a failure."""
        try:
            async with asyncio.timeout(timeout):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(*self.address)
                assert self.reader is not None
                self.writer.write(self.request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").lower().split("\r\n")
                fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
                await self.reader.readexactly(int(fields.get("content-length", "0")))
                if fields.get("connection", "").strip() == "close":
                    self.close()
                return int(lines[0].split()[1])
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: knit-bench\r\n\r\n".encode()


async def _open_loop(address: tuple[str, int], host: str, rate: float, count: int, connections: int) -> dict:
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(Connection(address, _request(host)))
    warmup = int(rate)  # one second
    latencies: list[float] = []  # ms from write to response
    from_plan: list[float] = []  # ms from the planned send time to response
    lateness: list[float] = []  # ms the write ran behind the plan
    errors = 0

    async def one(planned: float, measured: bool) -> None:
        nonlocal errors
        connection = await idle.get()
        sent = time.perf_counter()
        status = await connection.get(timeout=10)
        done = time.perf_counter()
        idle.put_nowait(connection)
        if measured:
            if status != 200:
                errors += 1
                return
            latencies.append((done - sent) * 1000)
            from_plan.append((done - planned) * 1000)
            lateness.append((sent - planned) * 1000)

    tasks = []
    start = time.perf_counter() + 0.05
    for n in range(warmup + count):
        planned = start + n / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(planned, n >= warmup)))
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    if not latencies:
        return {"errors": errors}
    return {
        "requests": len(latencies),
        "errors": errors,
        **{f"p{q}_ms": percentile(latencies, q) for q in (50, 90, 95, 99)},
        "max_ms": max(latencies),
        "from_plan_p50_ms": percentile(from_plan, 50),
        "from_plan_p99_ms": percentile(from_plan, 99),
        "late_p99_ms": percentile(lateness, 99),
    }


async def _closed_loop(address: tuple[str, int], host: str, connections: int, duration: float) -> dict:
    measure_from = time.perf_counter() + 1.0  # a second of warm-up
    until = measure_from + duration
    done = errors = 0

    async def worker() -> None:
        nonlocal done, errors
        connection = Connection(address, _request(host))
        while time.perf_counter() < until:
            status = await connection.get(timeout=10)
            if time.perf_counter() >= measure_from:
                if status == 200:
                    done += 1
                else:
                    errors += 1
        connection.close()

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - measure_from + 1.0
    return {"requests_per_s": done / duration, "errors": errors, "client_cpu": (time.process_time() - cpu) / elapsed}


def open_loop(address: tuple[str, int], host: str, rate: float, count: int, connections: int) -> dict:
    return asyncio.run(_open_loop(address, host, rate, count, connections))


def closed_loop(address: tuple[str, int], host: str, connections: int, duration: float) -> dict:
    return asyncio.run(_closed_loop(address, host, connections, duration))


# --- the benchmark -------------------------------------------------------------------------------


class CpuMeter:
    """CPU used by `knit dev` (the gateway runs in it) and by the instance (gunicorn and its
    worker), as a share of one core, over a stretch of time."""

    def __init__(self, knit_pid: int, instance_pid: int) -> None:
        self.processes = {
            "knit_cpu": (psutil.Process(knit_pid), False),
            "app_cpu": (psutil.Process(instance_pid), True),
        }
        self.start()

    def _seconds(self) -> dict[str, float]:
        seconds = {}
        for name, (process, children) in self.processes.items():
            tree = [process, *(process.children(recursive=True) if children else [])]
            seconds[name] = sum(p.cpu_times().user + p.cpu_times().system for p in tree)
        return seconds

    def start(self) -> None:
        self._since, self._seconds_then = time.perf_counter(), self._seconds()

    def shares(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._since
        return {name: (now - self._seconds_then[name]) / elapsed for name, now in self._seconds().items()}


def describe_open(runs: dict) -> str:
    return "   ".join(f"{p} p50 {runs[p]['p50_ms']:.2f} p99 {runs[p]['p99_ms']:.2f} ms ({runs[p]['errors']} errors, "
                       f"late p99 {runs[p]['late_p99_ms']:.2f})" for p in ("direct", "gateway"))  # fmt: skip


def describe_closed(runs: dict) -> str:
    return "   ".join(f"{p} {runs[p]['requests_per_s']:.0f} req/s ({runs[p]['errors']} errors; CPU client "
                       f"{runs[p]['client_cpu']:.0%}, knit dev {runs[p]['knit_cpu']:.0%}, app {runs[p]['app_cpu']:.0%})"
                       for p in ("direct", "gateway"))  # fmt: skip


def summarize(rounds: list[dict], rates: list[float], args: argparse.Namespace) -> dict:
    """Medians and ranges over the rounds, printed; added latency is paired by round."""
    summary: dict = {"open_loop": {}}
    print(f"\ngateway overhead over {args.rounds} rounds: median [range]; added = gateway - direct, paired by round")
    for rate in rates:
        runs = [r["open_loop"][rate] for r in rounds]
        print(f"  open loop {rate:g} req/s, {args.requests} requests, {args.connections} connections:")
        for q in ("p50", "p95", "p99"):
            s = {p: spread([run[p][f"{q}_ms"] for run in runs]) for p in ("direct", "gateway")}
            s["added"] = spread([run["gateway"][f"{q}_ms"] - run["direct"][f"{q}_ms"] for run in runs])
            summary["open_loop"].setdefault(rate, {})[q] = s
            if q in GOALS_MS:
                goal = f"goal <= {GOALS_MS[q]:g} ms: {'met' if s['added']['median'] <= GOALS_MS[q] else 'NOT met'}"
            else:
                goal = f"Knative's activator budget is {KNATIVE_ACTIVATOR_P95_MS:g} ms"
            print(f"    {q}: direct {fmt(s['direct'], digits=2)}, gateway {fmt(s['gateway'], digits=2)}, "
                  f"added {fmt(s['added'], digits=2)}  ({goal})")  # fmt: skip
    # Maximum throughput of a path in a round: its best over the connection counts tried.
    best = [{p: max(runs[p]["requests_per_s"] for runs in r["closed_loop"].values()) for p in ("direct", "gateway")}
            for r in rounds]  # fmt: skip
    s = summary["closed_loop"] = {
        "direct_rps": spread([b["direct"] for b in best]),
        "gateway_rps": spread([b["gateway"] for b in best]),
        "ratio": spread([b["gateway"] / b["direct"] for b in best]),
    }
    print(f"  closed loop, {args.saturate_seconds:g} s with {args.saturate_connections} connections, the best of "
          f"them: direct {fmt(s['direct_rps'], 'req/s', 0)}, gateway {fmt(s['gateway_rps'], 'req/s', 0)}, "
          f"gateway/direct {fmt(s['ratio'], '', 2)}")  # fmt: skip
    summary["errors"] = sum(run["errors"] for r in rounds for kind in ("open_loop", "closed_loop")
                            for runs in r[kind].values() for run in runs.values())  # fmt: skip
    print(f"  errors: {summary['errors']}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,500", help="open-loop req/s, comma separated (default 200,500)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per rate and path (default 3000)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections, open loop (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians and ranges are reported (default 3)")
    parser.add_argument(
        "--saturate-connections",
        default="4,16",
        help="closed-loop connection counts, comma separated; the best counts (default 4,16)",
    )
    parser.add_argument("--saturate-seconds", type=float, default=10.0, help="seconds per closed-loop run (default 10)")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    saturate = [int(count) for count in args.saturate_connections.split(",")]
    if args.requests < 100 or args.rounds < 1:
        parser.error("--requests must be at least 100 and --rounds at least 1")

    info = machine()
    annotations = {"autoscaling.knit.dev/min-scale": "1", "autoscaling.knit.dev/max-scale": "1"}
    host = host_of(SERVICE)
    rounds = []
    spawn = multiprocessing.get_context("spawn")
    with Knit([sample_service(SERVICE, annotations)], "gateway") as knit, \
            ProcessPoolExecutor(1, mp_context=spawn) as generator:  # fmt: skip
        instance = knit.wait_until(SERVICE, lambda r: r["actual_scale"] == 1, 60, "at one instance")["instances"][0]
        url = urlsplit(instance["address"])
        targets = {"direct": (url.hostname, url.port), "gateway": knit.gateway}
        cpu = CpuMeter(knit.dev.process.pid, instance["pid"])
        print(f"instance {instance['name']} (pid {instance['pid']}) at {instance['address']}; "
              f"gateway http://{knit.gateway[0]}:{knit.gateway[1]} with Host {host}")  # fmt: skip
        for number in range(1, args.rounds + 1):
            order = ["direct", "gateway"] if number % 2 else ["gateway", "direct"]
            result: dict = {"open_loop": {}, "closed_loop": {}}
            for rate in rates:
                runs = result["open_loop"][rate] = {}
                for p in order:
                    runs[p] = generator.submit(open_loop, targets[p], host, rate, args.requests, args.connections)
                    runs[p] = runs[p].result()
                    if "p50_ms" not in runs[p]:
                        raise SystemExit(f"{p} at {rate:g} req/s: no request succeeded ({runs[p]['errors']} errors)")
                print(f"round {number}, {rate:g} req/s: {describe_open(runs)}", flush=True)
            for connections in saturate:
                runs = result["closed_loop"][connections] = {}
                for p in order:
                    cpu.start()
                    job = generator.submit(closed_loop, targets[p], host, connections, args.saturate_seconds)
                    runs[p] = {**job.result(), **cpu.shares()}
                print(f"round {number}, closed loop x{connections}: {describe_closed(runs)}", flush=True)
            rounds.append(result)
        after = knit.revision(SERVICE)["instances"]
        if [i["pid"] for i in after] != [instance["pid"]]:
            print(f"warning: the instance changed during the run: {after}")

    summary = summarize(rounds, rates, args)
    save("gateway", {"args": vars(args), "machine": info, "rounds": rounds, "summary": summary})


if __name__ == "__main__":
    main()
