"""How many danmaku-processor instances are ready, as the platform reports it.

The same answer `knit service describe danmaku-processor` prints as "scale ready/desired":
the Service's Revisions, each with `actual_scale` (ready instances). From `knit dev`'s
control API (knit.client.LocalControl, with the token `knit dev` wrote for the user), or
from a cluster with knit installed (knit.client.ClusterControl: the Revisions' status
`actualReplicas`, written by knit's controller from the Deployment's ready replicas).

The knit platform kit is imported only when a source is used: danmaku-web itself does not
depend on it. A poller thread reads once a second, so a slow answer never holds the storm.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

PROCESSOR = ("default", "danmaku-processor")  # namespace, Service


class StatusError(RuntimeError):
    """The status source cannot be used; the message says why and what to do."""


def ready_instances(described: Mapping[str, Any]) -> int:
    """Ready instances of a Service as `knit service describe` gives it: over all its Revisions."""
    return sum(int(revision.get("actual_scale") or 0) for revision in described.get("revisions", []))


def default_source(control: str | None) -> str:
    """local when knit dev's control token for `control` is at hand (its file, or KNIT_CONTROL_TOKEN), else none."""
    try:
        from knit.client import control_url
        from knit.control_token import token_for
    except ImportError:
        return "none"
    return "local" if token_for(control_url(control)) else "none"


def reader(source: str, control: str | None) -> tuple[Callable[[], int] | None, str]:
    """A function that reads the processor's ready instances (None for `none`), and where it reads them."""
    if source == "none":
        return None, "no status source"
    try:
        from knit.client import ClusterControl, ControlError, LocalControl, control_url
    except ImportError:
        raise StatusError("this needs the knit platform kit (pip install -e platform); or pass --status none") from None
    if source == "local":
        url = control_url(control)
        platform: Any = LocalControl(url)
        where = f"knit dev's control API at {url}"
    else:
        try:
            platform = ClusterControl(None)
        except Exception as error:  # the kubernetes client raises its own types for a missing or bad kubeconfig
            raise StatusError(f"no cluster to ask ({error}); run make demo, or pass --status none") from None
        where = "the cluster of the current kubeconfig context"

    def read() -> int:
        try:
            return ready_instances(platform.service(*PROCESSOR))
        except ControlError as error:
            raise StatusError("; ".join(error.problems)) from None

    return read, where


class InstancesPoller:
    """Reads `read()` every `every` seconds in a daemon thread: the latest value, the peak, the last error."""

    def __init__(self, read: Callable[[], int], every: float = 1.0) -> None:
        self._read = read
        self._every = every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.latest: int | None = None
        self.peak: int | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                value: int | None = self._read()
                error = None
            except Exception as failure:  # reported on the live line, never fatal to the storm
                value, error = None, str(failure)
            with self._lock:
                self.latest, self.error = value, error
                if value is not None:
                    self.peak = value if self.peak is None else max(self.peak, value)
            self._stop.wait(self._every)

    def stop(self) -> None:
        self._stop.set()

    def sample(self) -> tuple[int | None, int | None, str | None]:
        with self._lock:
            return self.latest, self.peak, self.error
