"""danmaku-storm against the real app under `knit dev`, checked by a listener of its own.

The listener is a plain python-socketio client in each of the storm's rooms; what the
storm's summary says it delivered must be what the listener saw, per room, times the
storm's viewers there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

from knit.testing.harness import KnitDev

pytestmark = pytest.mark.integration

APP_MANIFESTS = Path(__file__).resolve().parents[3] / "manifests" / "app"
STORM = Path(sys.executable).with_name("danmaku-storm")  # the console script pyproject.toml declares
SUMMARY = re.compile(
    r"sent (?P<sent>\d+), delivered (?P<delivered>\d+), lost (?P<lost>\d+), duplicated (?P<duplicated>\d+), "
    r"p50 (?P<p50>\d+) ms, p99 (?P<p99>\d+) ms, processor instances peak (?P<peak>\d+)"
)
HANG = 60  # only a hang waits this long


@pytest.fixture(scope="module")
def knit_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnitDev]:
    with KnitDev(APP_MANIFESTS, cwd=tmp_path_factory.mktemp("knit-dev"), env=os.environ.copy()) as dev:
        yield dev


class Listener:
    """One Socket.IO client joined to `room`, counting the storm's comments it receives by text."""

    def __init__(self, url: str, room: str) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("danmaku", self._got)
        self.client.connect(url, transports=["websocket"], wait_timeout=HANG)
        assert self.client.call("join", {"room": room}, timeout=HANG)["ok"]

    def _got(self, comment: dict) -> None:
        if re.fullmatch(r"storm \S+ \d+", comment["text"]):
            with self._lock:
                self.seen[comment["text"]] += 1

    def counts(self) -> tuple[int, int]:
        """Comments received, and receipts beyond the first of one."""
        with self._lock:
            return len(self.seen), sum(self.seen.values()) - len(self.seen)


def test_the_storms_summary_matches_what_an_independent_listener_received(knit_dev):
    # given a listener in each of the storm's two rooms (Python cannot resolve *.localhost:
    # it connects to the cluster-local address, through the same gateway)
    prefix = f"st{uuid.uuid4().hex[:6]}"
    listeners = [Listener(knit_dev.address("danmaku-web"), f"{prefix}-{room}") for room in (1, 2)]
    try:
        # when 4 viewers watch 2 rooms while 6 comments a second are sent for 4 s: 24 comments, more
        # than one address may send in 4 s (a burst of 5, then 1/s), so none refused shows that the
        # app counts each poster's own source address, not the gateway's
        storm = subprocess.run(
            [str(STORM), "--url", knit_dev.url, "--control", knit_dev.control, "--status", "local",
             "--rate", "6", "--seconds", "4", "--viewers", "4", "--rooms", "2", "--room-prefix", prefix,
             "--drain", "20"],
            capture_output=True, text=True, timeout=HANG,
        )  # fmt: skip
        assert storm.returncode == 0, storm.stdout + storm.stderr
        lines = storm.stdout.splitlines()
        summary = SUMMARY.fullmatch(lines[-1])
        assert summary, storm.stdout
        numbers = {name: int(value) for name, value in summary.groupdict().items()}
        # the storm's viewers got everything before its drain ended; the listener gets the same comments
        # from the same emit, so it is a moment behind at most
        deadline = time.monotonic() + HANG
        while sum(listener.counts()[0] for listener in listeners) < numbers["sent"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for listener in listeners:
            listener.client.disconnect()
    # then
    assert lines[-2].startswith("not counted as lost: refused by the app 0,"), storm.stdout
    assert numbers["sent"] == 24
    assert (numbers["lost"], numbers["duplicated"]) == (0, 0), storm.stdout
    received = [listener.counts() for listener in listeners]
    assert [duplicates for _, duplicates in received] == [0, 0]
    assert sum(comments for comments, _ in received) == numbers["sent"]
    viewers_per_room = 4 // 2
    assert numbers["delivered"] == sum(comments * viewers_per_room for comments, _ in received), storm.stdout
    assert numbers["p50"] <= numbers["p99"]
    assert numbers["peak"] >= 1, "the processor served the comments, so at least one instance was ready"
    # one live line per second of storm, then the two closing lines
    assert len([line for line in lines if "sent/s" in line]) >= 4


def test_a_storm_scales_the_processor_out(knit_dev):
    # given the app's own manifests: the processor scales on requests per second, 10 per
    # instance at 70% utilization, up to 5 (manifests/app/danmaku-processor.yaml)
    # when 20 comments a second arrive for 10 s
    storm = subprocess.run(
        [str(STORM), "--url", knit_dev.url, "--control", knit_dev.control, "--status", "local",
         "--rate", "20", "--seconds", "10", "--viewers", "2", "--rooms", "2", "--drain", "20"],
        capture_output=True, text=True, timeout=HANG,
    )  # fmt: skip
    # then the processor ran more than one instance at once, and nothing was lost
    assert storm.returncode == 0, storm.stdout + storm.stderr
    summary = SUMMARY.fullmatch(storm.stdout.splitlines()[-1])
    assert summary, storm.stdout
    assert int(summary["lost"]) == 0, storm.stdout
    assert int(summary["peak"]) >= 2, storm.stdout
