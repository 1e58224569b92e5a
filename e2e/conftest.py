"""The app end to end: real broker, real gunicorn processes, real browsers.

Browser tests run against `--base-url` when given (any running deployment), else against
`knit dev -f manifests/app` started for the session, exactly as `make dev` runs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from knit.testing.harness import KnitDev, RunningManifests

ROOT = Path(__file__).resolve().parents[1]
APP_MANIFESTS = ROOT / "manifests" / "app"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialing Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Debian's Chromium where it is installed; else the browser `playwright install` fetched."""
    args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if CHROMIUM.exists():
        args["executable_path"] = str(CHROMIUM)
    return args


@pytest.fixture(scope="module")
def app_url(base_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Module-scoped: stopped before another module starts its own copy of the app, which,
    on a shared broker (KAFKA_BOOTSTRAP_SERVERS), would join the same consumer group."""
    if base_url:
        yield base_url.rstrip("/")
        return
    dev = KnitDev(APP_MANIFESTS, cwd=tmp_path_factory.mktemp("knit-dev"), env=os.environ.copy())
    try:
        yield dev.wait_ready().rstrip("/")
    finally:
        dev.stop()


@pytest.fixture(scope="module")
def running_app(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningManifests]:
    """The app on the local runtime in this process, so a test can stop and start a Service."""
    log = tmp_path_factory.mktemp("runtime") / "processes.log"
    app = RunningManifests([APP_MANIFESTS], kafka_bootstrap, log)
    app.start()
    try:
        yield app
    finally:
        app.stop()
