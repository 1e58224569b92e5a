"""This machine, as every part of knit sees it: the loopback address servers listen on, a free
port there, and the rule that a child process dies with its parent. Imports nothing of knit's,
so any package may use it."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
# Looked up once here: between fork and exec the child must not load libraries or take locks.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def free_port(host: str = HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends SIGTERM to the child if knit dies without cleaning up."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
