"""A small WSGI app for tests and benchmarks: says which Revision and process answered,
how many requests it was serving at once, and can take its time.

    gunicorn -k gthread --threads 16 -b 127.0.0.1:8080 knit.testing.sample_app:app

`GET /?sleep_ms=200` answers after 200 ms with {"revision", "pid", "in_flight",
"max_in_flight"}; `?burn_ms=200` keeps a CPU busy for 200 ms first; `GET /readyz`
answers at once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

# What `local.knit.dev/preload` names so instances fork from a template that imported these.
PRELOAD = "knit.testing.sample_app gunicorn.workers.gthread"


def container(threads: int) -> dict[str, Any]:
    """A container spec running this app under gunicorn: one gthread worker, `threads` threads."""
    return {
        "image": "sample-app:dev",
        "command": ["gunicorn"],
        "args": ["-k", "gthread", "--threads", str(threads), "--no-control-socket", "-b", "$(HOST):$(PORT)",
                 "knit.testing.sample_app:app"],
        "readinessProbe": {"httpGet": {"path": "/readyz"}},
    }  # fmt: skip


_lock = threading.Lock()
_in_flight = 0
_max_in_flight = 0


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    global _in_flight, _max_in_flight
    if environ.get("PATH_INFO") == "/readyz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ready"]
    with _lock:
        _in_flight += 1
        _max_in_flight = max(_max_in_flight, _in_flight)
        in_flight = _in_flight
    try:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        busy_until = time.perf_counter() + float(query.get("burn_ms", ["0"])[0]) / 1000
        while time.perf_counter() < busy_until:
            pass
        time.sleep(float(query.get("sleep_ms", ["0"])[0]) / 1000)
        body = json.dumps(
            {
                "revision": os.environ.get("K_REVISION", ""),
                "pid": os.getpid(),
                "in_flight": in_flight,
                "max_in_flight": _max_in_flight,
            }
        ).encode()
    finally:
        with _lock:
            _in_flight -= 1
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
