"""Autoscaler reaction: how long a Service at zero takes to reach the instances a step of
load needs.

`knit dev` runs knit's sample app (gunicorn gthread) with containerConcurrency 1 and a
concurrency target of 1 at 100% utilization, so N concurrent clients need exactly N
instances; each request takes 200 ms (`?sleep_ms=200`). Instances fork from a template
process (`local.knit.dev/preload`) unless --fresh. Windows are short so the Service is
back at zero within seconds: window 6s (panic window 1 s), scale-to-zero grace period 1s,
and Knative's tick of 2s.

Each run waits until the Revision is at zero (actual 0, none listed), pauses for a random
part of a tick (so the step keeps no fixed phase to the autoscaler's ticks), then starts
N closed-loop clients at once (the step; they go through the gateway) and polls
describe() every 50 ms. It measures, from the step: the first response, the first time
desired scale reaches N (the autoscaler's decision), and the first time N instances are
ready; then holds the load for a while, stops the clients and follows the Revision back
to rest.

From zero, the gateway reports every request that finds no instance to the autoscaler
at once (Knative's activator "poke"), so the decision comes without waiting for a tick.
For comparison each run also steps a second Service, the same but with min-scale 1, from
its one idle instance: there the decision comes from the metrics (collected every
second) at the next tick.

    python bench/autoscale.py                   # 5 runs of each with 6 clients, about 2.5 minutes
    python bench/autoscale.py --clients 10 --runs 3 --fresh
    python bench/autoscale.py --data-plane haproxy   # HAProxy in front (cc 1: the activator stays in the path)

Results: medians and ranges over the runs, one run's scale timeline, and JSON in
bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import random
import threading
import time

from _common import PRELOAD, Knit, autoscaler_config, fmt, host_of, machine, sample_service, save, spread

from knit.runtimes.local.runtime import DATA_PLANES

# scenario -> (Service, min-scale: the instances it rests at)
SCENARIOS = {"from zero": ("autoscale-zero", 0), "from one idle instance": ("autoscale-one", 1)}


def manifests(args: argparse.Namespace) -> list[dict]:
    services = []
    for service, min_scale in SCENARIOS.values():
        annotations = {
            "autoscaling.knit.dev/window": "6s",
            "autoscaling.knit.dev/target": "1",
            "autoscaling.knit.dev/target-utilization-percentage": "100",
            "autoscaling.knit.dev/min-scale": str(min_scale),
        }
        if not args.fresh:
            annotations["local.knit.dev/preload"] = PRELOAD
        services.append(sample_service(service, annotations, container_concurrency=1))
    config = autoscaler_config(scale_to_zero_grace_period="1s", stable_window="6s", tick_interval=f"{args.tick:g}s")
    return [*services, config]


def client(address: tuple[str, int], host: str, path: str, go: threading.Event, stop: threading.Event,
           step: list[float], answers: list[tuple[float, int]]) -> None:  # fmt: skip
    """One closed-loop client on a keep-alive connection: (seconds since the step, status) per response."""
    connection = http.client.HTTPConnection(*address, timeout=90)
    go.wait()
    try:
        while not stop.is_set():
            try:
                connection.request("GET", path, headers={"Host": host})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                status = 0
            answers.append((time.monotonic() - step[0], status))
    finally:
        connection.close()


def run_once(knit: Knit, args: argparse.Namespace, service: str, rest: int) -> dict:
    """One step to N clients from `rest` idle instances (its min-scale), followed back to
    them; times in seconds from the step."""

    def at_rest(revision: dict) -> bool:
        return revision["actual_scale"] == revision["desired_scale"] == len(revision["instances"]) == rest

    knit.wait_until(service, at_rest, args.rest_timeout, f"at {rest} instances")
    # Rest is seen just after a tick; a random pause keeps the step out of step with the ticks.
    time.sleep(0.5 + random.uniform(0, args.tick))
    go, stop = threading.Event(), threading.Event()
    step: list[float] = [0.0]
    answers: list[tuple[float, int]] = []
    path = f"/?sleep_ms={args.sleep_ms}"
    clients = [
        threading.Thread(
            target=client, args=(knit.gateway, host_of(service), path, go, stop, step, answers), daemon=True
        )
        for _ in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    timeline: list[tuple[float, int, int]] = []  # (seconds, actual, desired)
    reached = stopped = None
    deadline = args.timeout
    step[0] = time.monotonic()
    go.set()
    while True:
        revision = knit.revision(service)
        now = time.monotonic() - step[0]
        timeline.append((now, revision["actual_scale"], revision["desired_scale"]))
        if reached is None and revision["actual_scale"] >= args.clients:
            reached = now
        if stopped is None and (now > args.timeout or (reached is not None and now >= reached + args.hold)):
            stop.set()  # the clients stop after their current request
            stopped, deadline = now, now + args.rest_timeout
        elif stopped is not None and at_rest(revision):
            break
        elif now > deadline:
            raise SystemExit(f"{service} not back at {rest} instances {args.rest_timeout:g}s after the load stopped")
        time.sleep(0.05)
    for thread in clients:
        thread.join(10)

    if reached is None:
        raise SystemExit(f"{service} never had {args.clients} ready instances within {args.timeout:g}s: {timeline[-1]}")
    ok = [at for at, status in answers if status == 200 and at <= stopped]
    if not ok:
        raise SystemExit(f"{service}: no request succeeded ({len(answers)} failed); see {knit.dev.log_path}")
    return {
        "first_response_s": min(ok),
        "desired_reached_s": next(t for t, _, desired in timeline if desired >= args.clients),
        "ready_reached_s": reached,
        "max_desired": max(desired for _, _, desired in timeline),
        "max_actual": max(actual for _, actual, _ in timeline),
        "responses": len(ok),
        "errors": sum(1 for _, status in answers if status != 200),
        "load_stopped_s": stopped,
        "at_rest_again_s": timeline[-1][0],
        "timeline": timeline,
    }


def describe(run: dict, needed: int) -> str:
    return (f"first response {run['first_response_s']:.2f} s, desired {needed} at {run['desired_reached_s']:.2f} s, "
            f"{needed} ready at {run['ready_reached_s']:.2f} s (max desired {run['max_desired']}, max ready "
            f"{run['max_actual']}, {run['responses']} responses, {run['errors']} errors; back to rest "
            f"{run['at_rest_again_s'] - run['load_stopped_s']:.1f} s after the load stopped)")  # fmt: skip


def print_timeline(run: dict) -> None:
    """The moments the scale changed: seconds from the step, actual, desired."""
    print(f"  {'seconds':>8} {'actual':>7} {'desired':>8}")
    previous, marked = None, False
    for at, actual, desired in run["timeline"]:
        if not marked and at >= run["load_stopped_s"]:
            print(f"  {run['load_stopped_s']:8.2f}  (the clients stop)")
            marked = True
        if (actual, desired) != previous:
            print(f"  {at:8.2f} {actual:7} {desired:8}")
            previous = (actual, desired)
    print(f"  (first response at {run['first_response_s']:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=6, help="concurrent closed-loop clients, N (default 6)")
    parser.add_argument("--runs", type=int, default=5, help="steps of each kind; medians and ranges (default 5)")
    parser.add_argument("--sleep-ms", type=int, default=200, help="time each request takes (default 200 ms)")
    parser.add_argument("--tick", type=float, default=2.0, help="tick-interval in seconds (default 2, Knative's)")
    parser.add_argument("--fresh", action="store_true", help="start instances as fresh processes (no preload)")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds of load after N are ready (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the load may take to reach N ready")
    parser.add_argument("--rest-timeout", type=float, default=60.0, help="seconds to get back to rest after it")
    parser.add_argument("--data-plane", choices=DATA_PLANES, default=DATA_PLANES[0], help="knit dev --data-plane")
    args = parser.parse_args()
    if args.runs < 1 or args.clients < 1:
        parser.error("--runs and --clients must be at least 1")

    info = machine()
    runs: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    with Knit(manifests(args), "autoscale", ("--data-plane", args.data_plane)) as knit:
        for number in range(1, args.runs + 1):
            for name, (service, rest) in SCENARIOS.items():
                run = run_once(knit, args, service, rest)
                runs[name].append(run)
                print(f"run {number}, {name}: {describe(run, args.clients)}", flush=True)

    starts = "forked from a template (preload)" if not args.fresh else "fresh processes"
    print(f"\nautoscaler reaction to a step of {args.clients} clients ({args.sleep_ms} ms requests, "
          f"containerConcurrency 1, so {args.clients} instances needed; instances {starts}; tick {args.tick:g}s); "
          f"{args.runs} runs each, median [range] in seconds from the step:")  # fmt: skip
    print(f"  {'':<24} {'first response':<22} {'desired reaches ' + str(args.clients):<22} "
          f"{str(args.clients) + ' instances ready':<22} most ready at once")  # fmt: skip
    summary = {}
    for name in SCENARIOS:
        keys = ("first_response_s", "desired_reached_s", "ready_reached_s")
        summary[name] = {key: spread([run[key] for run in runs[name]]) for key in (*keys, "max_actual")}
        most = summary[name]["max_actual"]
        print(f"  {name:<24} " + " ".join(f"{fmt(summary[name][key], 's', 2):<22}" for key in keys)
              + f" {most['median']:g} [{most['min']:g}-{most['max']:g}]")  # fmt: skip
    over = [n + 1 for n, run in enumerate(runs["from zero"]) if run["max_actual"] > args.clients]
    if over:
        print(f"  note: from zero, more than {args.clients} instances were started in run(s) {over}; see max desired")
    for name in SCENARIOS:
        middle = sorted(runs[name], key=lambda run: run["ready_reached_s"])[len(runs[name]) // 2]
        print(f"\nscale timeline, {name}, run {runs[name].index(middle) + 1} (the median one):")
        print_timeline(middle)
    save("autoscale", {"args": vars(args), "machine": info, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
