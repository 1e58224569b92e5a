"""Cold start on kind: from a request to a Revision at zero pods until its 200 response.

Needs the cluster with knit installed (`make kind-up kind-platform`; `make bench-kind` does
both). Runs knit's sample app (the knit image, gunicorn gthread) as a Service that goes back to
zero soon after a request: config-autoscaler in knit-system sets window 6s, grace period 1s,
tick 1s (as bench/coldstart.py does locally). The image is already on the node, so this is
knit's path (activator → autoscaler → Deployment scale → scheduler → kubelet → readiness →
gateway), not a pull. Each round waits until the Revision has no pod left (none listed), then
times one GET through the gateway at http://127.0.0.1:8080 on a new connection; the pod that
answers is a new one every time (its name is checked against the previous).

    python bench/kind_coldstart.py             # 10 cold starts (about 3 minutes)
    python bench/kind_coldstart.py --runs 20

Results: p50, p95 and the range, beside Knative's figure (about 2 s at best on a real
cluster, from its docs) and the issue's goal (1 s), and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import time

import requests
from _common import machine, percentile, save, spread

from knit.testing.kind import GATEWAY, NAMESPACE, Kind, hello

GOAL_P50_S = 1.0
KNATIVE_S = 2.0


def autoscaler_config() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": "knit-system"},
        "data": {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "1s"},
    }


def request(host: str) -> tuple[int, dict]:
    """GET / through the gateway on a new connection (no session: requests opens one per call)."""
    response = requests.get(f"{GATEWAY}/", headers={"Host": host, "Connection": "close"}, timeout=120)
    return response.status_code, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    kind = Kind()
    kind.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kind.apply(autoscaler_config())

    def config_applied() -> bool:
        return '"tick-interval": "1s"}' in kind.controller_log().split("config-autoscaler applied:")[-1]

    kind.wait("the controller applied config-autoscaler", config_applied)
    kind.apply(hello())
    host = f"hello.{NAMESPACE}.localhost"
    kind.wait("hello ready", lambda: kind.pods("hello-00001"))
    samples: list[float] = []
    pods: list[str] = []
    try:
        for run in range(args.runs):
            # Zero: the last pod gone, not only terminating (see the note in docs/kubernetes.md).
            kind.wait("hello at zero pods", lambda: not kind.pods("hello-00001", terminating=True), timeout=120)
            started = time.perf_counter()
            status, _ = request(host)
            elapsed = time.perf_counter() - started
            assert status == 200, status
            pod = kind.wait("the pod that answered", lambda: kind.pods("hello-00001"))[0]
            assert pod not in pods, f"{pod} answered twice: not a cold start"
            pods.append(pod)
            samples.append(elapsed)
            print(f"run {run + 1}/{args.runs}: {elapsed:.2f} s ({pod})", flush=True)
    finally:
        resource = kind.dynamic.resources.get(api_version="serving.knit.dev/v1", kind="Service")
        resource.delete(name="hello", namespace=NAMESPACE)
        kind.core.delete_namespaced_config_map("config-autoscaler", "knit-system")

    stats = {"p50": percentile(samples, 50), "p95": percentile(samples, 95), **spread(samples)}
    print(f"\ncold start on kind, {len(samples)} runs: p50 {stats['p50']:.2f} s, p95 {stats['p95']:.2f} s, "
          f"range {stats['min']:.2f}–{stats['max']:.2f} s (goal p50 ≤ {GOAL_P50_S:g} s; "
          f"Knative about {KNATIVE_S:g} s at best)")  # fmt: skip
    save("kind-coldstart", {"samples_s": samples, "stats_s": stats, "goal_p50_s": GOAL_P50_S,
                            "knative_s": KNATIVE_S, "machine": machine()})  # fmt: skip


if __name__ == "__main__":
    main()
