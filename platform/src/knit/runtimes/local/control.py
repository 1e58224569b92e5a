"""The control API of a running `knit dev`, which the `knit` commands talk to.

JSON over HTTP on 127.0.0.1: apply manifests, read Services, Revisions and Routes, change
a Service's traffic, and Prometheus metrics at /metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from knit.observability import CONTENT_TYPE_LATEST
from knit.resources.loading import InvalidManifests, load_manifests
from knit.runtimes.local.processes import ProcessFailed
from knit.runtimes.local.runtime import LocalRuntime
from knit.serving.state import InvalidApply
from knit.serving.traffic import edit_traffic, static_problems

DEFAULT_PORT = 8081
CONTROL_URL_ENV = "KNIT_CONTROL_URL"


def _problems(status: int, problems: list[str]) -> web.Response:
    return web.json_response({"problems": problems}, status=status)


def control_app(runtime: LocalRuntime) -> web.Application:
    async def apply(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            manifests = load_manifests([Path(p) for p in body.get("paths", [])], known=runtime.known())
            changes = await runtime.apply(manifests)
        except (InvalidManifests, InvalidApply) as error:
            return _problems(422, error.problems)
        except ProcessFailed as error:
            return _problems(500, [str(error)])
        return web.json_response({"changes": changes})

    def service_or_404(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            return runtime.describe(request.match_info["namespace"], request.match_info["name"])
        except KeyError as error:
            return _problems(404, [error.args[0]])

    async def services(_: web.Request) -> web.Response:
        return web.json_response({"services": runtime.services()})

    async def service(request: web.Request) -> web.Response:
        found = service_or_404(request)
        return found if isinstance(found, web.Response) else web.json_response(found)

    async def update_traffic(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        body = await request.json()
        try:
            record = runtime.state.record(namespace, name)
            traffic = edit_traffic(
                record.service.spec.traffic, body.get("traffic", []), body.get("tags", []), body.get("untags", [])
            )
        except KeyError as error:
            return _problems(404, [error.args[0]])
        except ValueError as error:
            return _problems(422, [str(error)])
        problems = [f"{path}: {message}" for path, message in static_problems(traffic)]
        if problems:
            return _problems(422, problems)
        try:
            runtime.update_traffic(namespace, name, traffic)
        except InvalidApply as error:
            return _problems(422, error.problems)
        return web.json_response(runtime.describe(namespace, name))

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=runtime.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "gateway": f"http://127.0.0.1:{runtime.port}"})

    app = web.Application()
    app.add_routes(
        [
            web.post("/apply", apply),
            web.get("/services", services),
            web.get("/services/{namespace}/{name}", service),
            web.post("/services/{namespace}/{name}/traffic", update_traffic),
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
        ]
    )
    return app


async def serve_control(runtime: LocalRuntime, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(control_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
