"""What the dashboard shows, kept for the last minutes: pure, the clock passed in.

Every second the server reads the runtime (`Reading`) and `History.record`s it: per Revision
its ready and desired instances, panic mode, requests per second (from the gateway's
request counter) and requests in flight. `snapshot` is the JSON the page renders, and
`chart_svg` a Revision's instances over the kept window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

KEPT_SECONDS = 300  # the charts' window; one sample a second
CHART_WIDTH, CHART_HEIGHT = 300, 64


@dataclass(frozen=True)
class RevisionReading:
    service: str
    namespace: str
    name: str
    percent: int  # of its Service's traffic
    ready: bool  # the Revision's Ready condition
    actual: int  # instances ready
    desired: int  # instances the autoscaler asks for
    panic: bool
    requests: float  # answered by the gateway so far (a counter)
    in_flight: int


@dataclass(frozen=True)
class Reading:
    services: list[dict[str, Any]]  # name, namespace, url, ready, reason
    revisions: list[RevisionReading]
    sources: list[dict[str, Any]]  # kind, name, ready, reason, what


@dataclass(frozen=True)
class Sample:
    at: float
    actual: int
    desired: int
    rps: float
    in_flight: int
    panic: bool


@dataclass
class _Series:
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=KEPT_SECONDS))
    requests: float = 0.0


class History:
    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}
        self._last: Reading = Reading([], [], [])

    def record(self, now: float, reading: Reading) -> None:
        """Add a second's reading; a Revision no longer read is forgotten."""
        series = {}
        for revision in reading.revisions:
            kept = self._series.get(revision.name) or _Series(requests=revision.requests)
            previous = kept.samples[-1] if kept.samples else None
            elapsed = now - previous.at if previous else 0.0
            # A counter only grows; a smaller one (a restart) starts the rate again from it.
            rps = max(revision.requests - kept.requests, 0.0) / elapsed if elapsed > 0 else 0.0
            kept.requests = revision.requests
            kept.samples.append(Sample(now, revision.actual, revision.desired, rps, revision.in_flight, revision.panic))
            series[revision.name] = kept
        self._series = series
        self._last = reading

    def samples(self, revision: str) -> list[Sample]:
        kept = self._series.get(revision)
        return list(kept.samples) if kept else []

    def snapshot(self) -> dict[str, Any]:
        """The page's data: Services with their Revisions (the latest sample and the peak over
        the window), and the eventing sources."""
        services = []
        for service in self._last.services:
            revisions = []
            for revision in self._last.revisions:
                if (revision.service, revision.namespace) != (service["name"], service["namespace"]):
                    continue
                samples = self.samples(revision.name)
                latest = samples[-1] if samples else None
                revisions.append(
                    {
                        "name": revision.name,
                        "percent": revision.percent,
                        "ready": revision.ready,
                        "actual": revision.actual,
                        "desired": revision.desired,
                        "panic": revision.panic,
                        "rps": round(latest.rps, 1) if latest else 0.0,
                        "in_flight": revision.in_flight,
                        "peak": max((s.actual for s in samples), default=0),
                    }
                )
            services.append({**service, "revisions": revisions})
        return {"services": services, "sources": self._last.sources}


def chart_svg(samples: list[Sample], now: float) -> str:
    """Instances over the last KEPT_SECONDS: ready as a filled line, desired dashed. Only
    numbers go into the markup."""
    top = max([1, *(max(s.actual, s.desired) for s in samples)])

    def point(sample: Sample, value: int) -> str:
        x = CHART_WIDTH - (now - sample.at) * CHART_WIDTH / KEPT_SECONDS
        y = CHART_HEIGHT - 2 - value * (CHART_HEIGHT - 14) / top
        return f"{max(x, 0.0):.1f},{y:.1f}"

    ready = " ".join(point(s, s.actual) for s in samples)
    desired = " ".join(point(s, s.desired) for s in samples)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="instances, last {KEPT_SECONDS} s">'
        f'<rect width="{CHART_WIDTH}" height="{CHART_HEIGHT}" fill="#161b22"/>'
        f'<text x="4" y="11" font-size="10" fill="#8b949e" font-family="sans-serif">{top}</text>'
        f'<polyline points="{desired}" fill="none" stroke="#d29922" stroke-width="1.5" stroke-dasharray="4 3"/>'
        f'<polyline points="{ready}" fill="none" stroke="#3fb950" stroke-width="2"/>'
        "</svg>"
    )
