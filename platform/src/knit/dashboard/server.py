"""The dashboard's HTTP side: the page, `/snapshot`, `/events` (server-sent events, a
snapshot a second) and `/charts/<revision>.svg`.

Read-only: it reads the runtime through the `read` function it is given, once a second, and
serves only what `History` keeps. Bounded: at most MAX_STREAMS event streams at once (the
next gets a 503 saying so), each closed after STREAM_SECONDS (EventSource reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from knit.dashboard.history import History, Reading, chart_svg

PAGE = Path(__file__).parent / "page"
SAMPLE_SECONDS = 1.0
MAX_STREAMS = 16
STREAM_SECONDS = 900
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

SAMPLER = web.AppKey("sampler", asyncio.Task[None])

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=HEADERS)


def dashboard_app(read: Callable[[], Reading], clock: Callable[[], float] = time.monotonic) -> web.Application:
    history = History()
    streams = 0
    latest = b"{}"  # the last snapshot as JSON, made once a second for every viewer

    def sample() -> None:
        nonlocal latest
        try:
            history.record(clock(), read())
        except Exception:  # a failed read leaves the last one shown; the next second tries again
            log.exception("the dashboard could not read the runtime")
            return
        latest = json.dumps(history.snapshot()).encode()

    async def sample_forever(_: web.Application) -> None:
        while True:
            sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def start(app: web.Application) -> None:
        sample()
        app[SAMPLER] = asyncio.create_task(sample_forever(app))

    async def stop(app: web.Application) -> None:
        app[SAMPLER].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[SAMPLER]

    def static(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = (PAGE / name).read_bytes()

        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, headers=HEADERS)

        return handler

    async def snapshot(_: web.Request) -> web.Response:
        return web.Response(body=latest, content_type="application/json", headers=HEADERS)

    async def events(request: web.Request) -> web.StreamResponse:
        nonlocal streams
        if streams >= MAX_STREAMS:
            return _error(503, "too_many_streams", f"the dashboard serves {MAX_STREAMS} live views at once; "
                                                   "close one, or read /snapshot")  # fmt: skip
        streams += 1
        try:
            response = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream"})
            await response.prepare(request)
            deadline = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < deadline:
                await response.write(b"data: " + latest + b"\n\n")
                await asyncio.sleep(SAMPLE_SECONDS)
            return response
        except ConnectionError:  # the page went away
            return response
        finally:
            streams -= 1

    async def chart(request: web.Request) -> web.Response:
        revision = request.match_info["revision"]
        samples = history.samples(revision)
        if not samples:
            return _error(
                404, "unknown_revision", f"no Revision {revision!r} is running; the dashboard lists those that are"
            )
        return web.Response(text=chart_svg(samples, clock()), content_type="image/svg+xml", headers=HEADERS)

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.add_routes(
        [
            web.get("/", static("index.html", "text/html")),
            web.get("/dashboard.js", static("dashboard.js", "text/javascript")),
            web.get("/dashboard.css", static("dashboard.css", "text/css")),
            web.get("/snapshot", snapshot),
            web.get("/events", events),
            web.get("/charts/{revision}.svg", chart),
        ]
    )
    return app
