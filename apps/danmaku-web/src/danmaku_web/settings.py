"""danmaku-web's settings: every knob once, with its default, unit and meaning.

Each knob is read from the environment variable `DANMAKU_WEB_<NAME>` (Kafka's address
from the standard `KAFKA_BOOTSTRAP_SERVERS`); `create_app(config)` overrides both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "DANMAKU_WEB_"


@dataclass(frozen=True)
class Knob:
    name: str  # the Flask config key
    default: int | float | str
    doc: str
    env: str = ""  # the environment variable, when it is not PREFIX + name
    zero_ok: bool = False  # numbers must be positive unless zero has a meaning

    @property
    def variable(self) -> str:
        return self.env or PREFIX + self.name


KNOBS = (
    Knob(
        "KAFKA_BOOTSTRAP_SERVERS",
        "127.0.0.1:9092",
        "Kafka brokers, host:port[,host:port…]",
        env="KAFKA_BOOTSTRAP_SERVERS",
    ),
    Knob("KAFKA_TIMEOUT_SECONDS", 5.0, "seconds to wait for Kafka to acknowledge a comment before answering 503"),
    Knob("ASYNC_MODE", "threading", "Socket.IO async mode; gunicorn_conf sets gevent to match its worker class"),
    Knob(
        "MAX_CONTENT_LENGTH", 4096, "largest request body or Socket.IO message in bytes; a comment needs a few hundred"
    ),
    Knob(
        "SOCKETIO_MAX_BUFFER_SIZE",
        65536,
        "largest Engine.IO packet (WebSocket message or polling body) in bytes; a bigger one drops the "
        "connection. Messages over MAX_CONTENT_LENGTH but within this are refused in the ack instead",
    ),
    Knob("RATE_LIMIT_BURST", 5, "comments one client address may send at once, over HTTP and Socket.IO together"),
    Knob("RATE_LIMIT_PER_SECOND", 1.0, "comments per second one client address may keep sending"),
    Knob("MAX_CONNECTIONS_PER_ADDRESS", 20, "Socket.IO connections one client address may hold open at once"),
    Knob(
        "TRUSTED_PROXIES",
        0,
        "proxies in front whose X-Forwarded-For/-Proto to trust; 0 = clients connect directly",
        zero_ok=True,
    ),
    Knob("HISTORY_SIZE", 50, "published comments kept per room for late joiners"),
    Knob("HISTORY_ROOMS", 1000, "rooms whose history is kept; the least recently active is dropped"),
    Knob("RECENT_EVENT_IDS", 10000, "event ids remembered to drop redelivered events"),
    Knob(
        "CORS_ALLOWED_ORIGINS",
        "",
        "origins allowed to open a Socket.IO connection, comma-separated or *; empty = same origin",
    ),
    Knob(
        "EVENT_SENDERS",
        "",
        "identities (the token's sub) allowed to POST /events, comma-separated, e.g. "
        "system:serviceaccount:default:danmaku-processor; empty = nobody",
    ),
    # Set by the platform (knit, or Knative with OIDC): how to verify who sent an event.
    Knob("OIDC_ISSUER", "", "the issuer event tokens must name", env="K_OIDC_ISSUER"),
    Knob("OIDC_JWKS", "", "the issuer's public keys: a JWKS file path, file:// or http(s) URL", env="K_OIDC_JWKS"),
    Knob("AUDIENCE", "", "this service's audience, which event tokens must name", env="K_AUDIENCE"),
)


def _parse(knob: Knob, raw: Any) -> int | float | str:
    kind = type(knob.default)
    if isinstance(raw, kind):
        return raw
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"{knob.variable} must be {'an integer' if kind is int else 'a number'} ({knob.doc}); got {raw!r}"
        ) from None
    if isinstance(value, int | float) and (value < 0 or (value == 0 and not knob.zero_ok)):
        bound = "not be negative" if knob.zero_ok else "be greater than 0"
        raise ValueError(f"{knob.variable} must {bound} ({knob.doc}); got {raw!r}")
    return value


def load(environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the environment, then `overrides` (keyed by knob name)."""
    overrides = overrides or {}
    settings = {}
    for knob in KNOBS:
        raw = overrides.get(knob.name, environ.get(knob.variable, knob.default))
        settings[knob.name] = _parse(knob, raw)
    settings.update({key: value for key, value in overrides.items() if key not in settings})
    return settings
