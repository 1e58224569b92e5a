"""Prometheus metrics of the gateway and the autoscaler, in a registry of their own.

Served at `/metrics` on the control API. Names follow Prometheus conventions; labels are
the Service and Revision, as Knative's own metrics label them.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "AutoscalerMetrics", "GatewayMetrics", "Metrics"]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("service", "revision")
        self.requests = Counter(
            "knit_gateway_requests", "Requests answered by the gateway", (*labels, "code_class"), registry=registry
        )
        self.latency = Histogram(
            "knit_gateway_request_duration_seconds",
            "Time from a request's arrival at the gateway to its last response byte (WebSockets: the session)",
            labels,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.in_flight = Gauge(
            "knit_gateway_in_flight_requests", "Requests in progress or waiting for an instance", labels,
            registry=registry,
        )  # fmt: skip

    def observe(self, service: str, revision: str, status: int, seconds: float) -> None:
        self.requests.labels(service, revision, f"{status // 100}xx").inc()
        self.latency.labels(service, revision).observe(seconds)


class AutoscalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("service", "revision")
        self.desired = Gauge("knit_autoscaler_desired_scale", "Instances wanted", labels, registry=registry)
        self.actual = Gauge("knit_autoscaler_actual_scale", "Instances ready to serve", labels, registry=registry)
        self.panic = Gauge("knit_autoscaler_panic_mode", "1 while the autoscaler is in panic mode", labels,
                           registry=registry)  # fmt: skip
        self.stable = Gauge(
            "knit_autoscaler_stable_value", "Observed metric (concurrency or rps) over the stable window", labels,
            registry=registry,
        )  # fmt: skip
        self.panic_value = Gauge(
            "knit_autoscaler_panic_value", "Observed metric (concurrency or rps) over the panic window", labels,
            registry=registry,
        )  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gateway = GatewayMetrics(self.registry)
        self.autoscaler = AutoscalerMetrics(self.registry)

    def forget_revision(self, service: str, revision: str) -> None:
        """Drop a deleted Revision's gauges (its request counts stay: they happened)."""
        autoscaler = self.autoscaler
        for gauge in (self.gateway.in_flight, autoscaler.desired, autoscaler.actual, autoscaler.panic,
                      autoscaler.stable, autoscaler.panic_value):  # fmt: skip
            with contextlib.suppress(KeyError):
                gauge.remove(service, revision)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
