"""What knit's eventing processes (dispatcher, ingress, ping) share: configuration as JSON
in one environment variable, logging, `/healthz`, `/readyz` and `/metrics` on `PORT`, and
running until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")
Readiness = Callable[[], str | None]  # None when ready, else why not


def _always_ready() -> str | None:
    return None


async def serve(
    port: int,
    readiness: Readiness = _always_ready,
    metrics: Callable[[], bytes] | None = None,
    routes: Iterable[web.RouteDef] = (),
    max_body: int = 1024**2,
) -> web.AppRunner:
    """Serve the probes (and `routes`) on HOST:port until the runner is cleaned up."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reason = readiness()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reason": reason}, status=503)

    app = web.Application(client_max_size=max_body)
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), *routes])
    if metrics is not None:
        metrics_of = metrics
        app.add_routes([web.get("/metrics", lambda _: _metrics_response(metrics_of()))])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), port).start()
    return runner


async def _metrics_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/plain")


def until_signalled() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call inside the running loop)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def main(variable: str, parse: Callable[[str], T], run: Callable[[T, int], Awaitable[None]], what: str) -> None:
    """The entry point: read the configuration, set up logging, run until signalled."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    raw = os.environ.get(variable)
    if not raw:
        raise SystemExit(f"{variable} is not set: it must hold the {what} configuration as JSON")
    asyncio.run(run(parse(raw), int(os.environ.get("PORT", "8080"))))
