"""Go-style durations ("60s", "1m30s", "500ms", "1.5h"), as Knative's annotations and
config-autoscaler write them, read into seconds and written back for docs and messages."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(rf"[-+]?(?:{_PART.pattern})+")

EXAMPLES = '"60s", "1m30s", "500ms", "1h"'


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError. Like Go, "0" needs no unit."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"is not a duration; write it like {EXAMPLES}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    return -seconds if text.startswith("-") else seconds


def format_duration(seconds: float) -> str:
    """90.0 -> "1m30s", 5400.0 -> "1h30m", 0.5 -> "500ms": short, and parse_duration reads it back."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:g}h" if hours else "", f"{minutes:g}m" if minutes else "", f"{secs:g}s" if secs else ""]
    return "".join(parts)
