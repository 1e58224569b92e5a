"""What one client can make the gateway hold, each limit defined once: name, default, unit, doc.

`GatewayLimits` is what the gateway reads; its fields' metadata give the unit and the doc
that `knit dev`'s flags (`--max-request-body 16MiB`, `--request-header-timeout 5s`) and the
docs' table are made from. Sizes are bytes (written `65536`, `64KiB` or `8MiB`), times are
seconds (written as Go durations, `10s`, `1m`). Every limit is finite: there is no
"unlimited", only a larger number.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from knit.durations import EXAMPLES, format_duration, parse_duration

KiB = 1024
MiB = 1024 * KiB
BYTES, DURATION, COUNT = "bytes", "duration", "count"


def _limit(default: Any, unit: str, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class GatewayLimits:
    max_request_body: int = _limit(
        8 * MiB, BYTES,
        "Largest request body. The gateway reads the whole body before it takes an instance's slot, "
        "so a slow upload never holds an instance; a larger body (chunked ones counted as they arrive) "
        "gets 413 and nothing is forwarded. Large uploads are not a use case.",
    )  # fmt: skip
    request_body_timeout: float = _limit(
        60.0, DURATION, "Time the whole request body has to arrive in; after it, 408 and the connection is closed."
    )
    request_header_timeout: float = _limit(
        10.0, DURATION,
        "Time a client has to send a complete request head (request line and headers), from the connection's "
        "start or from the first byte of a later request on it; after it the connection is closed "
        "(with a 408 when some of the head came).",
    )  # fmt: skip
    keepalive_timeout: float = _limit(75.0, DURATION, "Time an idle keep-alive connection stays open between requests.")
    max_header_line: int = _limit(
        8190, BYTES, "Longest request line, header name or header value; a longer one gets 431."
    )
    max_header_size: int = _limit(
        32 * KiB, BYTES, "Most bytes in a request head, request line and headers; more gets 431."
    )
    max_header_count: int = _limit(128, COUNT, "Most header lines in a request; more gets 431.")
    max_websocket_message: int = _limit(
        1 * MiB, BYTES,
        "Largest WebSocket message relayed, either way; a larger one closes that WebSocket with 1009 "
        "(message too big) before any of it is buffered.",
    )  # fmt: skip
    max_connections_per_address: int = _limit(
        256, COUNT, "Most open connections from one client address to one gateway listener; the next one gets 429 "
        "and is closed.",
    )  # fmt: skip

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            if not getattr(self, spec.name) > 0:
                raise ValueError(f"gateway limit {spec.name} must be above 0; got {getattr(self, spec.name)!r}")


# --- reading and writing values -----------------------------------------------------------------

_SIZE = re.compile(r"([0-9]+)\s*(KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "KiB": KiB, "MiB": MiB, "GiB": 1024 * MiB}


def parse_size(text: str) -> int:
    """Bytes in `65536`, `64KiB`, `8MiB` or `1GiB`; raises ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError("must be a number of bytes above 0, such as 65536, 64KiB or 8MiB")
    return int(match[1]) * _SIZE_UNITS[match[2]]


def _parse_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be a duration above 0, such as {EXAMPLES}")
    return seconds


def _parse_count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) == 0:
        raise ValueError("must be a whole number above 0")
    return int(text)


_PARSERS: dict[str, Callable[[str], Any]] = {BYTES: parse_size, DURATION: _parse_duration, COUNT: _parse_count}


def format_size(size: int) -> str:
    """8388608 -> "8MiB", 8190 -> "8190": as the flags accept it."""
    for unit in ("GiB", "MiB", "KiB"):
        if size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


def format_value(unit: str, value: Any) -> str:
    return {BYTES: format_size, DURATION: format_duration}.get(unit, str)(value)


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


# --- the CLI and the docs read the definitions above ----------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per limit (`--max-request-body`, …), defaulting to the definition's value."""
    group = parser.add_argument_group("gateway limits (what one client can make the gateway hold)")
    for spec in dataclasses.fields(GatewayLimits):
        unit = spec.metadata["unit"]
        group.add_argument(
            flag_of(spec.name), dest=f"gateway_{spec.name}", type=_argument_type(spec.name, unit),
            default=spec.default, metavar=unit.upper(),
            help=f"{spec.metadata['doc']} (default {format_value(unit, spec.default)})".replace("%", "%%"),
        )  # fmt: skip


def _argument_type(name: str, unit: str) -> Callable[[str], Any]:
    parse = _PARSERS[unit]

    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{error}; got {text!r}") from None

    read.__name__ = name  # argparse names the type in its messages
    return read


def from_arguments(args: argparse.Namespace) -> GatewayLimits:
    return GatewayLimits(
        **{spec.name: getattr(args, f"gateway_{spec.name}") for spec in dataclasses.fields(GatewayLimits)}
    )


def limits_markdown() -> str:
    """The limits as a Markdown table, for docs/serving.md."""
    lines = ["| `knit dev` flag | default | unit | what it bounds |", "|---|---|---|---|"]
    for spec in dataclasses.fields(GatewayLimits):
        unit = spec.metadata["unit"]
        default = format_value(unit, spec.default)
        lines.append(f"| `{flag_of(spec.name)}` | `{default}` | {unit} | {spec.metadata['doc']} |")
    return "\n".join(lines) + "\n"
