"""The dashboard under `knit dev`: what it reads from the local runtime, and where it is served
(its own 127.0.0.1 port, reached through the gateway as dashboard.knit.<domain>)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from knit.dashboard.history import Reading, RevisionReading
from knit.dashboard.server import dashboard_app
from knit.runtimes.local.runtime import LocalRuntime

SERVICE, NAMESPACE = "dashboard", "knit"  # so its host is dashboard.knit.localhost
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def _condition(status: dict[str, Any], kind: str) -> dict[str, str]:
    return next((c for c in status["conditions"] if c["type"] == kind), {"status": "Unknown", "reason": ""})


def reader(runtime: LocalRuntime) -> Callable[[], Reading]:
    registry = runtime.metrics.registry

    def value(name: str, labels: dict[str, str]) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    def read() -> Reading:
        services, revisions = [], []
        for service in runtime.services():
            name, namespace, status = service["name"], service["namespace"], service["status"]
            ready = _condition(status, "Ready")
            services.append({"name": name, "namespace": namespace, "url": status.get("url") or "",
                             "ready": ready["status"] == "True", "reason": ready["reason"]})  # fmt: skip
            for revision in service["revisions"]:
                labels = {"service": name, "revision": revision["name"]}
                revisions.append(
                    RevisionReading(
                        service=name,
                        namespace=namespace,
                        name=revision["name"],
                        percent=revision["percent"],
                        ready=revision["ready"] is True,
                        actual=revision["actual_scale"],
                        desired=revision["desired_scale"],
                        panic=value("knit_autoscaler_panic_mode", labels) == 1,
                        requests=sum(
                            value("knit_gateway_requests_total", {**labels, "code_class": c}) for c in CODE_CLASSES
                        ),
                        in_flight=int(value("knit_gateway_in_flight_requests", labels)),
                    )
                )
        sources = []
        for row in runtime.eventing():
            conditions = {c["type"]: c for c in row["conditions"]}
            what = conditions.get("Deployed", conditions.get("Addressable", {})).get("message", "")
            sources.append({"kind": row["kind"], "name": f"{row['namespace']}/{row['name']}",
                            "ready": row["ready"]["status"] == "True", "reason": row["ready"]["reason"],
                            "what": what})  # fmt: skip
        return Reading(services, revisions, sources)

    return read


async def serve_dashboard(runtime: LocalRuntime) -> tuple[web.AppRunner, str]:
    """Serve the dashboard on a free 127.0.0.1 port and route its host through the gateway;
    `runner.cleanup()` stops it. Its URL."""
    runner = web.AppRunner(dashboard_app(reader(runtime)), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, runtime.route_platform_service(SERVICE, NAMESPACE, port)
