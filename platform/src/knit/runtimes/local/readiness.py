"""Readiness checks, as Kubernetes runs them: an HTTP GET that must answer 2xx/3xx, or a
TCP connect when the container declares no HTTP probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from knit.resources.model import Probe


class NotReady(RuntimeError):
    pass


async def _http_ready(session: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
            if 200 <= response.status < 400:
                return None
            return f"GET {url} answered {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return f"GET {url} failed: {type(error).__name__}"


async def _tcp_ready(host: str, port: int) -> str | None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
    except (OSError, TimeoutError) as error:
        return f"connect {host}:{port} failed: {type(error).__name__}"
    writer.close()
    return None


async def wait_until_ready(
    probe: Probe | None, host: str, port: int, timeout: float, alive: Callable[[], bool]
) -> None:
    """Poll until ready; NotReady says why not when the process died or time ran out."""
    deadline = time.monotonic() + timeout
    http_get = probe.http_get if probe else None
    pause = 0.002  # checked often at first: a forked instance is ready in tens of milliseconds
    async with aiohttp.ClientSession() as session:
        while True:
            if http_get:
                url = f"http://{host}:{http_get.port or port}{http_get.path}"
                problem = await _http_ready(session, url)
            else:
                problem = await _tcp_ready(host, port)
            if problem is None:
                return
            if not alive():
                raise NotReady(f"the process exited before it was ready (last check: {problem})")
            if time.monotonic() > deadline:
                raise NotReady(f"not ready after {timeout:.0f}s: {problem}")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.05)
