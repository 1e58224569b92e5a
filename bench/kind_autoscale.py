"""Autoscaler reaction on kind: how long a Service at zero pods takes to reach the pods a step
of load needs, as bench/autoscale.py measures it under `knit dev`.

Needs the cluster with knit installed (`make kind-up kind-platform`; `make bench-kind` does
both). knit's sample app (the knit image, gunicorn gthread) with containerConcurrency 1 and a
target of 1 at 100% utilization, so N concurrent clients need exactly N pods; each request
takes 200 ms (`?sleep_ms=200`). config-autoscaler in knit-system: window 6s, grace period 1s,
Knative's tick of 2s (as locally). Each run waits until the Revision has no pod, then starts N
closed-loop clients at once through the gateway (http://127.0.0.1:8080) and polls the
Revision's Deployment every 100 ms. From the step it measures: the first response, the
decision (the Deployment asked for N replicas: the autoscaler's word through the scale
subresource) and N pods ready (the Deployment's readyReplicas: scheduled, started, probed
ready by the kubelet); then holds the load for 10 s and stops.

    python bench/kind_autoscale.py                  # 3 runs with 4 clients, about 3 minutes
    python bench/kind_autoscale.py --clients 6 --runs 5

Results: medians and ranges, and JSON in bench/results/. The same measure under `knit dev`
is bench/autoscale.py (`make bench-autoscale`).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import requests
from _common import fmt, machine, save, spread

from knit.testing.kind import GATEWAY, NAMESPACE, Kind, hello

HOLD_S = 10.0
REVISION = "step-00001"


def step_service() -> dict[str, Any]:
    service = hello(annotations={"autoscaling.knit.dev/target": "1",
                                 "autoscaling.knit.dev/target-utilization-percentage": "100"})  # fmt: skip
    service["metadata"]["name"] = "step"
    service["spec"]["template"]["spec"]["containerConcurrency"] = 1
    return service


def autoscaler_config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": "knit-system"},
        "data": {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "2s"},
    }


def clients(count: int, stop: threading.Event, first: list[float]) -> list[threading.Thread]:
    """N closed-loop clients through the gateway; the first response's time goes into `first`."""

    def loop() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.get(f"{GATEWAY}/?sleep_ms=200", headers={"Host": f"step.{NAMESPACE}.localhost"},
                                       timeout=120)  # fmt: skip
                if response.status_code == 200 and not first:
                    first.append(time.monotonic())

    return [threading.Thread(target=loop, daemon=True) for _ in range(count)]


def run_once(kind: Kind, count: int) -> dict[str, float]:
    kind.wait("step at zero pods", lambda: not kind.pods(REVISION, terminating=True), timeout=180)
    stop, first = threading.Event(), []
    threads = clients(count, stop, first)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    decided = ready = None
    try:
        while time.monotonic() - started < 120 and ready is None:
            deployment = kind.get("apps/v1", "Deployment", f"{REVISION}-deployment")
            now = time.monotonic()
            if decided is None and deployment["spec"].get("replicas", 0) >= count:
                decided = now
            if decided is not None and (deployment.get("status") or {}).get("readyReplicas", 0) >= count:
                ready = now
            time.sleep(0.1)
        assert decided is not None and ready is not None, f"{count} pods not ready within 120 s"
        time.sleep(HOLD_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(130)
    return {"first_response_s": first[0] - started, "decision_s": decided - started, "ready_s": ready - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    kind = Kind()
    kind.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kind.apply(autoscaler_config())
    kind.wait(
        "the controller applied config-autoscaler",
        lambda: '"tick-interval": "2s"}' in kind.controller_log().split("config-autoscaler applied:")[-1],
    )
    kind.apply(step_service())
    kind.wait("step's first pod (Knative's initial scale)", lambda: kind.pods(REVISION))
    runs: list[dict[str, float]] = []
    try:
        for n in range(args.runs):
            result = run_once(kind, args.clients)
            runs.append(result)
            print(f"run {n + 1}/{args.runs}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
    finally:
        resource = kind.dynamic.resources.get(api_version="serving.knit.dev/v1", kind="Service")
        resource.delete(name="step", namespace=NAMESPACE)
        kind.core.delete_namespaced_config_map("config-autoscaler", "knit-system")

    summary = {key: spread([r[key] for r in runs]) for key in runs[0]}
    print(f"\nfrom zero to {args.clients} pods on kind, {len(runs)} runs (median [range]):")
    for key, stats in summary.items():
        print(f"  {key:<18} {fmt(stats, 's', 2)}")
    save("kind-autoscale", {"clients": args.clients, "runs": runs, "summary_s": summary, "machine": machine()})


if __name__ == "__main__":
    main()
