"""danmaku-storm's options: each defined once (flag, default, unit, limits, meaning), and checked.

Pure: `parse(argv)` returns StormOptions or raises OptionError, whose message says which
option was wrong, its value, and what to do. The limits keep one run bounded in time,
connections and work, on the machine that also runs the app.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from danmaku_events.comment import InvalidComment, validate_room
from danmaku_web.settings import KNOBS

# What `make dev` (knit dev -f manifests/app) serves the app at.
DEFAULT_URL = "http://danmaku-web.default.localhost:8080"
# The comments one address may keep sending per second, as danmaku-web allows by default.
APP_RATE_PER_ADDRESS = float(next(knob.default for knob in KNOBS if knob.name == "RATE_LIMIT_PER_SECOND"))
# More would have this process count deliveries late, and measure itself instead of the app.
MAX_DELIVERIES_PER_SECOND = 20000
STATUS_SOURCES = ("local", "kube", "none")


class OptionError(ValueError):
    """An option is out of its limits or does not fit the others; the message says which and what to do."""


@dataclass(frozen=True)
class Option:
    flag: str
    default: Any
    kind: type  # int, float or str
    unit: str
    doc: str
    low: float | None = None
    high: float | None = None
    fix: str = "pick one in that range"  # what to do about a value out of its limits

    @property
    def field(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


OPTIONS = (
    Option(
        "--url", DEFAULT_URL, str, "URL",
        "the app's address as `make dev` prints it; on this machine (127.0.0.0/8, localhost or *.localhost), "
        "since the simulated people connect from loopback addresses",
    ),
    Option(
        "--rate", 20.0, float, "comments/s", "comments sent per second, all posters together",
        low=0.1, high=2000, fix="for more, run several storms side by side, each with its own --room-prefix",
    ),
    Option(
        "--seconds", 30.0, float, "s", "how long comments are sent; then at most --drain seconds of waiting",
        low=1, high=600, fix="for longer load, run storms one after another",
    ),
    Option(
        "--rooms", 2, int, "rooms", "rooms the viewers are spread over, and the comments sent to",
        low=1, high=100,
    ),
    Option(
        "--viewers", 20, int, "viewers",
        "Socket.IO clients that join a room and receive its comments, one loopback address each",
        low=1, high=3000, fix="for more, run several storms side by side, each with its own --room-prefix",
    ),
    Option(
        "--posters", 0, int, "posters",
        "Socket.IO clients that send the comments, one loopback address each; 0 = enough that none sends more "
        f"than the app allows one address ({APP_RATE_PER_ADDRESS:g}/s); fewer provoke its rate limit",
        low=0, high=3000, fix="pick one in that range, or 0 for as many as --rate needs",
    ),
    Option(
        "--drain", 10.0, float, "s",
        "after the storm, how long to wait for comments still on their way; it ends sooner when all arrived",
        low=0, high=120,
    ),
    Option(
        "--status", None, str, "source",
        "where the processor's ready instances are read: local (knit dev's control API), kube (the cluster of "
        "the current kubeconfig context) or none; default local when knit dev's control token for --control "
        "exists, else none",
    ),
    Option(
        "--control", None, str, "URL",
        "knit dev's control API, as the knit commands find it (default $KNIT_CONTROL_URL or "
        "http://127.0.0.1:8081)",
    ),
    Option(
        "--room-prefix", "storm", str, "name",
        "rooms are named <prefix>-1, <prefix>-2, …; lowercase letters, digits and '-'",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class StormOptions:
    """One run's options, checked (see `checked`); their defaults are OPTIONS'."""

    url: str
    rate: float
    seconds: float
    rooms: int
    viewers: int
    posters: int
    drain: float
    status: str | None
    control: str | None
    room_prefix: str

    @property
    def comments(self) -> int:
        """How many comments the storm sends: fixed before it starts."""
        return round(self.rate * self.seconds)

    @property
    def poster_count(self) -> int:
        """--posters, or enough that each sends at most the app's rate per address."""
        return self.posters or math.ceil(self.rate / APP_RATE_PER_ADDRESS)

    def room_names(self) -> list[str]:
        return [f"{self.room_prefix}-{number}" for number in range(1, self.rooms + 1)]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="danmaku-storm",
        description="A bounded comment storm against the running danmaku app: simulated viewers and posters "
        "over Socket.IO from loopback addresses 127.0.0.2, 127.0.0.3, …; a line per second, then one summary "
        "line: sent N, delivered M, lost L, duplicated D, p50 X ms, p99 Y ms, processor instances peak P.",
    )
    for option in OPTIONS:
        if option.kind is str:
            facts = [f"default {option.default}"] if option.default is not None else []
        else:
            facts = [f"{option.unit}, {option.low:g} to {option.high:g}", f"default {option.default:g}"]
        help_text = option.doc + (f" ({'; '.join(facts)})" if facts else "")
        parser.add_argument(
            option.flag,
            type=option.kind,
            default=option.default,
            metavar=option.unit.upper().replace("/", "_PER_") if option.kind is not str else option.unit.upper(),
            choices=STATUS_SOURCES if option.flag == "--status" else None,
            help=help_text.replace("%", "%%"),
        )
    return parser


def parse(argv: Sequence[str] | None = None) -> StormOptions:
    """The options given on the command line, checked; OptionError says what is wrong.

    argparse itself exits (status 2) on an unknown flag or a value that is not a number.
    """
    return checked(vars(parser().parse_args(argv)))


def checked(values: Mapping[str, Any]) -> StormOptions:
    """StormOptions from `values` (keyed by field), each within its limits and fitting the others."""
    for option in OPTIONS:
        value = values.get(option.field, option.default)
        if option.low is None or option.high is None:
            continue
        # `not low <= value` also catches NaN.
        if not (option.low <= value <= option.high):
            raise OptionError(
                f"{option.flag} must be from {option.low:g} to {option.high:g} {option.unit} ({option.doc}); "
                f"got {value:g}: {option.fix}"
            )
    options = StormOptions(**{option.field: values.get(option.field, option.default) for option in OPTIONS})
    _check_url(options.url)
    if options.rooms > options.viewers:
        raise OptionError(
            f"--rooms ({options.rooms}) is more than --viewers ({options.viewers}): a room nobody watches measures "
            "nothing; raise --viewers or lower --rooms"
        )
    if options.comments < 1:
        raise OptionError(
            f"--rate {options.rate:g} for --seconds {options.seconds:g} sends no comment; raise one of them"
        )
    deliveries = options.rate * options.viewers / options.rooms
    if deliveries > MAX_DELIVERIES_PER_SECOND:
        raise OptionError(
            f"--rate {options.rate:g} to --viewers {options.viewers} in --rooms {options.rooms} means "
            f"{deliveries:.0f} deliveries per second (rate × viewers ÷ rooms), more than the "
            f"{MAX_DELIVERIES_PER_SECOND} this process can count on time; lower --rate or --viewers, or raise --rooms"
        )
    longest = options.room_names()[-1]
    try:
        validate_room(longest)
    except InvalidComment:
        raise OptionError(
            f"--room-prefix {options.room_prefix!r} makes room names such as {longest!r}, which the app refuses: "
            "a room is 1 to 32 lowercase letters, digits or '-'; pick a shorter prefix of those"
        ) from None
    return options


def loopback_host(host: str) -> bool:
    """Whether `host` names this machine's IPv4 loopback: 127.0.0.0/8, localhost or *.localhost
    (RFC 6761: such names are the loopback, as browsers treat them; knit serves on 127.0.0.1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    example = f"e.g. {DEFAULT_URL}"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise OptionError(f"--url {url!r} has a port that is not a number; give the app's URL, {example}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise OptionError(f"--url must be the app's http:// URL, {example}; got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OptionError(
            f"--url is the app's base URL, without a path (rooms come from --rooms and --room-prefix), {example}; "
            f"got {url!r}"
        )
    if not loopback_host(parts.hostname):
        raise OptionError(
            f"--url must be on this machine (127.0.0.0/8, localhost or *.localhost), since the simulated people "
            f"connect from loopback addresses 127.0.0.2, 127.0.0.3, …; got {url!r}; run the storm where the app runs"
        )
