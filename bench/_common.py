"""Shared parts of the knit benchmarks (coldstart, gateway, autoscale): manifests running
knit's sample app under gunicorn, `knit dev` as a subprocess, its control API, plain HTTP
through the gateway, statistics and the results file.

Python clients cannot resolve *.localhost, so requests go to the gateway's 127.0.0.1 port
with a Host header `<service>.default.localhost`.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from knit.testing import sample_app
from knit.testing.harness import KnitDev

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PRELOAD = sample_app.PRELOAD


def sample_service(name: str, annotations: dict[str, str], container_concurrency: int | None = None) -> dict:
    """A Service running knit's sample app under gunicorn (one gthread worker, 8 threads)."""
    spec: dict[str, Any] = {"containers": [sample_app.container(threads=8)]}
    if container_concurrency is not None:
        spec["containerConcurrency"] = container_concurrency
    return {
        "apiVersion": "serving.knit.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}},
    }


def autoscaler_config(**data: str) -> dict:
    """The `config-autoscaler` ConfigMap; keyword names use _ for -."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler"},
        "data": {key.replace("_", "-"): value for key, value in data.items()},
    }


def host_of(service: str) -> str:
    return f"{service}.default.localhost"


class Knit:
    """`knit dev` (a real subprocess, real embedded Kafka) running the given objects from
    manifests in a temporary folder; the status of Services comes from its control API."""

    def __init__(self, objects: list[dict], label: str, args: tuple[str, ...] = ()) -> None:
        """`args`: more `knit dev` arguments, such as `--data-plane haproxy`."""
        self.folder = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
        manifests = self.folder / "manifests"
        manifests.mkdir()
        (manifests / "bench.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
        self.dev = KnitDev(manifests, cwd=self.folder, args=args)

    def __enter__(self) -> Knit:
        try:
            self.dev.wait_ready(120)
        except BaseException:
            self.dev.stop()
            raise
        assert self.dev.gateway and self.dev.control
        gateway = urlsplit(self.dev.gateway)
        self.gateway = (gateway.hostname or "127.0.0.1", gateway.port or 80)
        print(f"knit dev: gateway {self.dev.gateway}, control API {self.dev.control} (log: {self.dev.log_path})")
        return self

    def __exit__(self, *_: object) -> None:
        code = self.dev.stop()
        if code not in (0, None):
            print(f"knit dev exited with code {code}; see {self.dev.log_path}", file=sys.stderr)

    def describe(self, service: str) -> dict[str, Any]:
        return self.dev.describe(service)  # with the control API's token, as the knit commands send it

    def revision(self, service: str) -> dict[str, Any]:
        """The Service's newest Revision, as describe() shows it."""
        return self.describe(service)["revisions"][0]

    def wait_until(self, service: str, test: Callable[[dict], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            revision = self.revision(service)
            if test(revision):
                return revision
            if time.monotonic() > deadline:
                raise SystemExit(f"{service}: not {what} within {timeout:g}s (last: {summary(revision)}); "
                                 f"see {self.dev.log_path}")  # fmt: skip
            time.sleep(0.05)

    def wait_at_zero(self, service: str, timeout: float = 120) -> None:
        self.wait_until(service, lambda r: r["actual_scale"] == 0 and not r["instances"], timeout, "at zero")


def summary(revision: dict[str, Any]) -> str:
    return f"{revision['name']} actual {revision['actual_scale']}, desired {revision['desired_scale']}, " \
           f"{len(revision['instances'])} instances"  # fmt: skip


def get(address: tuple[str, int], host: str, path: str, timeout: float = 60) -> tuple[int, bytes]:
    """One GET on a new connection; (status, body)."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest rank on the sorted values, as bench/latency.py."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(stats: dict[str, float], unit: str = "ms", digits: int = 1) -> str:
    """`12.3 ms [11.0-14.2]`: the median and the range."""
    return f"{stats['median']:.{digits}f} {unit} [{stats['min']:.{digits}f}-{stats['max']:.{digits}f}]"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "note": "2-core shared development machine; other sessions' processes may run at the same time",
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    payload["machine"]["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"results: {out}")
    return out
