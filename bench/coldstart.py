"""Cold start: from the first request to a Revision at zero instances until its 200 response.

`knit dev` runs two Services of knit's sample app under gunicorn (gthread), the same but
for one annotation:

- forked: `local.knit.dev/preload` names the app and gunicorn's gthread worker, so an
  instance is forked from a template process that has them imported already;
- fresh: no preload, so each instance is a fresh `gunicorn` process.

Both go back to zero a few seconds after a request (window 6s, grace period 1s, tick 1s).
Each round waits until describe() shows both Revisions at 0 instances (actual 0, none
listed), then times one GET through the gateway for each, on a new connection, in
alternating order. The response's pid is checked to be a new process every time.

    python bench/coldstart.py              # 20 cold starts of each (about 3 minutes)
    python bench/coldstart.py --runs 40
    python bench/coldstart.py --data-plane haproxy   # HAProxy in front, the activator holding the request

Results: p50, p95 and the range per configuration, and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import (
    PRELOAD,
    Knit,
    autoscaler_config,
    get,
    host_of,
    machine,
    percentile,
    sample_service,
    save,
    spread,
    summary,
)

from knit.runtimes.local.runtime import DATA_PLANES

GOAL_P50_MS = 200.0
CONFIGS = {  # Service name -> annotations besides the shared ones
    "coldstart-forked": {"local.knit.dev/preload": PRELOAD},
    "coldstart-fresh": {},
}


def manifests() -> list[dict]:
    shared = {"autoscaling.knit.dev/window": "6s"}
    services = [sample_service(name, {**shared, **extra}) for name, extra in CONFIGS.items()]
    config = autoscaler_config(scale_to_zero_grace_period="1s", stable_window="6s", tick_interval="1s")
    return [*services, config]


def cold_start(knit: Knit, service: str, timeout: float) -> tuple[float, int]:
    """One timed GET to a Revision known to be at zero: (milliseconds, pid that answered)."""
    started = time.perf_counter()
    status, body = get(knit.gateway, host_of(service), "/", timeout)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise SystemExit(f"{service}: the cold request answered {status}: {body[:300]!r}")
    return elapsed, json.loads(body)["pid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="cold starts of each configuration (default 20)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one cold request may take")
    parser.add_argument("--zero-timeout", type=float, default=120.0, help="seconds to wait for a Revision at zero")
    parser.add_argument("--settle", type=float, default=0.5, help="pause after both are at zero (default 0.5 s)")
    parser.add_argument("--data-plane", choices=DATA_PLANES, default=DATA_PLANES[0], help="knit dev --data-plane")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2")

    info = machine()
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    pids: dict[str, set[int]] = {name: set() for name in CONFIGS}
    with Knit(manifests(), "coldstart", ("--data-plane", args.data_plane)) as knit:
        for number in range(1, args.runs + 1):
            for name in CONFIGS:
                knit.wait_at_zero(name, args.zero_timeout)
            time.sleep(args.settle)
            order = list(CONFIGS) if number % 2 else list(reversed(CONFIGS))
            line = []
            for name in order:
                if knit.revision(name)["actual_scale"] != 0:
                    raise SystemExit(f"{name} is no longer at zero: {summary(knit.revision(name))}")
                elapsed, pid = cold_start(knit, name, args.timeout)
                if pid in pids[name]:
                    raise SystemExit(f"{name}: pid {pid} answered twice; the request was not a cold start")
                pids[name].add(pid)
                times[name].append(elapsed)
                line.append(f"{name.removeprefix('coldstart-')} {elapsed:6.1f} ms")
            print(f"round {number:2}: " + "   ".join(line), flush=True)

    results = {}
    for name, values in times.items():
        results[name] = {
            "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95),
            "mean_ms": sum(values) / len(values),
            **{f"{k}_ms": v for k, v in spread(values).items() if k != "median"},
            "cold_starts_ms": values,
        }
    print(f"\ncold start = first request to a Revision at zero -> its 200, through the gateway; "
          f"{args.runs} cold starts each")  # fmt: skip
    print(f"  {'configuration':<34} {'p50':>9} {'p95':>9}   range")
    labels = {"coldstart-forked": "preload (forked from a template)", "coldstart-fresh": "fresh processes"}
    for name, result in results.items():
        print(f"  {labels[name]:<34} {result['p50_ms']:6.1f} ms {result['p95_ms']:6.1f} ms   "
              f"{result['min_ms']:.1f}-{result['max_ms']:.1f} ms")  # fmt: skip
    for name, result in results.items():
        verdict = "met" if result["p50_ms"] <= GOAL_P50_MS else "NOT met"
        print(f"goal p50 <= {GOAL_P50_MS:g} ms, {labels[name]}: {verdict}")
    print("For comparison: Knative on Kubernetes reports cold starts of about 2 s at best.")

    save("coldstart", {"args": vars(args), "machine": info, "results": results})


if __name__ == "__main__":
    main()
