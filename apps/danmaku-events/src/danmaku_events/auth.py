"""Who sent an event: checking the bearer token the platform attaches to each delivery,
and attaching one when sending.

The contract, the same on knit and on Knative Eventing with OIDC (docs/eventing.md,
"Sender identity"): every delivery carries `Authorization: Bearer <JWT>` whose `sub`
is the sender's identity (`system:serviceaccount:<namespace>:<name>`) and whose `aud` is
the receiver's audience. The platform tells each process, in its environment:

- `K_OIDC_ISSUER`: the issuer tokens must name (`iss`);
- `K_OIDC_JWKS`: where the issuer's public keys are: a JWKS file path, `file://` URI
  or `http(s)://` URL;
- `K_AUDIENCE`: this service's own audience, which tokens sent to it must name;
- for a sender bound to `K_SINK`: `K_OIDC_TOKEN_FILE`, the file holding its token for
  `K_SINK`'s audience (`K_SINK_AUDIENCE`), replaced before the token expires.

A receiver calls `verify` (or a `Verifier`): the sender's identity, or AuthError, whose
status is 401 (no token, or one that proves nothing here: bad signature, unknown key,
other issuer, other audience, expired) or 403 (a valid token of a sender not allowed).
A sender reads its token with `TokenFile` on every send.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

ISSUER_ENV = "K_OIDC_ISSUER"
JWKS_ENV = "K_OIDC_JWKS"
AUDIENCE_ENV = "K_AUDIENCE"
TOKEN_FILE_ENV = "K_OIDC_TOKEN_FILE"
SINK_AUDIENCE_ENV = "K_SINK_AUDIENCE"

# Asymmetric signatures only: `none`, and an HMAC keyed with the public key, never pass.
ALGORITHMS = ("ES256", "RS256")
LEEWAY = 10.0  # seconds of clock difference tolerated on exp and iat
MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp")


class AuthError(Exception):
    """A delivery refused for who sent it: HTTP status, stable code, message for a person."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """RFC 6750's challenge on a 401."""
        if self.status != 401:
            return {}
        error = ', error="invalid_token"' if self.code == "invalid_token" else ""
        return {"WWW-Authenticate": f'Bearer realm="events"{error}'}

    def to_error(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def _unauthenticated(message: str) -> AuthError:
    return AuthError(401, "invalid_token", message)


def not_configured(what: str) -> AuthError:
    """503: this service cannot tell senders apart, so it accepts none."""
    return AuthError(
        503,
        "auth_not_configured",
        f"{what}: this service accepts events only from senders it can verify, and it has no "
        f"{ISSUER_ENV}, {JWKS_ENV} and {AUDIENCE_ENV} to verify with (knit sets them for every instance)",
    )


# --- the issuer's public keys ---------------------------------------------------------------


class KeySet:
    """The issuer's public keys from a JWKS at `location` (a path, file:// or http(s)://),
    loaded on first use and again when a token names a key not in it: at once for a file
    that changed, at most every `refetch_interval` seconds for a URL."""

    def __init__(
        self, location: str, refetch_interval: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not location:
            raise ValueError(f"{JWKS_ENV} must name a JWKS file or URL")
        parts = urlsplit(location)
        self.location = location
        self._path = Path(unquote(parts.path)) if parts.scheme in ("", "file") else None
        if self._path is None and parts.scheme not in ("http", "https"):
            raise ValueError(f"{JWKS_ENV} must be a file path, file:// URI or http(s) URL; got {location!r}")
        self.refetch_interval = refetch_interval
        self.clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._version: Any = None
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            if kid not in self._keys:
                self._reload()
            return self._keys.get(kid)

    def _reload(self) -> None:
        try:
            if self._path is not None:
                status = self._path.stat()
                version = (status.st_ino, status.st_mtime_ns, status.st_size)
                if version == self._version:
                    return
                self._keys, self._version = parse_jwks(json.loads(self._path.read_bytes())), version
                return
            now = self.clock()
            if self._fetched_at is not None and now - self._fetched_at < self.refetch_interval:
                return
            self._fetched_at = now
            with urllib.request.urlopen(self.location, timeout=5) as response:
                self._keys = parse_jwks(json.loads(response.read(1024 * 1024)))
        except (OSError, ValueError) as error:
            message = f"the issuer's keys at {self.location} cannot be read: {error}"
            raise AuthError(503, "keys_unavailable", message) from None


def parse_jwks(jwks: Any) -> dict[str, jwt.PyJWK]:
    """A JWKS as {kid: key}, keeping only signing keys of the accepted algorithms."""
    keys = {}
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("a JWKS is a JSON object with a list of keys")
    for entry in entries:
        try:
            key = jwt.PyJWK.from_dict(entry)
        except (jwt.PyJWTError, TypeError, ValueError, KeyError):
            continue
        if key.key_id and key.algorithm_name in ALGORITHMS and entry.get("use", "sig") == "sig":
            keys[key.key_id] = key
    return keys


# --- verifying ----------------------------------------------------------------------------------


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 when there is none."""
    value = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
    if value is None:
        message = "send the platform's token for this sink as Authorization: Bearer <token>"
        raise AuthError(401, "missing_token", message)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise _unauthenticated(f"the Authorization scheme must be Bearer; got {scheme[:20]!r}")
    if not token or " " in token or len(token) > MAX_TOKEN_LENGTH:
        raise _unauthenticated("the Authorization header must be `Bearer <token>` with one token")
    return token


def _seconds(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _unauthenticated(f"the token's {name} must be a number of seconds")
    return float(value)


def verify(
    headers: Mapping[str, str],
    audience: str,
    allowed_subjects: Collection[str] | None,
    jwks_source: KeySet,
    *,
    issuer: str,
    now: float | None = None,
    leeway: float = LEEWAY,
) -> str:
    """The identity (`sub`) of the sender of a request whose bearer token is signed by a key
    of `jwks_source`, names `issuer` and `audience`, and is valid at `now` (default: the
    clock); AuthError 401 otherwise. With `allowed_subjects` (None = any sender), a sender
    not among them is AuthError 403."""
    token = bearer_token(headers)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _unauthenticated("the bearer token is not a JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise _unauthenticated(f"tokens signed with {str(alg)[:20]!r} are not accepted")
    key = jwks_source.key(kid) if isinstance(kid, str) and kid else None
    if key is None:
        raise _unauthenticated("the token was not signed by a key of this platform's issuer")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=issuer,
            audience=audience,
            # Time is checked below, against `now`.
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidAudienceError:
        raise _unauthenticated(f"the token is for another receiver; tokens for this sink name {audience!r}") from None
    except jwt.InvalidIssuerError:
        raise _unauthenticated(f"the token was not issued by {issuer!r}") from None
    except jwt.PyJWTError as error:
        raise _unauthenticated(f"the token is invalid: {error}") from None
    now = time.time() if now is None else now
    if now > _seconds(claims, "exp") + leeway:
        raise _unauthenticated("the token has expired; send the current one from the token file")
    if _seconds(claims, "iat") > now + leeway or ("nbf" in claims and _seconds(claims, "nbf") > now + leeway):
        raise _unauthenticated("the token is not valid yet")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise _unauthenticated("the token names no sender (sub)")
    if allowed_subjects is not None and subject not in allowed_subjects:
        raise AuthError(403, "sender_not_allowed", f"{subject} may not send events to this sink")
    return subject


@dataclass(frozen=True)
class Verifier:
    """`verify` with its settings bound, for a service that checks every request the same way."""

    issuer: str
    audience: str
    keys: KeySet
    allowed_subjects: frozenset[str] | None = None
    leeway: float = LEEWAY

    def verify(self, headers: Mapping[str, str], now: float | None = None) -> str:
        return verify(
            headers, self.audience, self.allowed_subjects, self.keys, issuer=self.issuer, now=now, leeway=self.leeway
        )


def subjects(value: str | Iterable[str] | None) -> frozenset[str]:
    """Allowed senders from a comma-separated string (or any iterable of them)."""
    parts = value.split(",") if isinstance(value, str) else (value or ())
    return frozenset(part.strip() for part in parts if part and part.strip())


def verifier_from_settings(
    issuer: str | None, jwks: str | None, audience: str | None, allowed_subjects: Collection[str] | None = None
) -> Verifier | None:
    """A Verifier when issuer, JWKS and audience are all given; None when none is; ValueError
    naming what is missing when only some are (a half-configured service is a mistake)."""
    given = {ISSUER_ENV: issuer, JWKS_ENV: jwks, AUDIENCE_ENV: audience}
    missing = [name for name, value in given.items() if not value]
    if len(missing) == len(given):
        return None
    if missing:
        raise ValueError(f"sender verification needs {', '.join(given)}; {', '.join(missing)} is not set")
    allowed = None if allowed_subjects is None else frozenset(allowed_subjects)
    return Verifier(str(issuer), str(audience), KeySet(str(jwks)), allowed)


def verifier_from_environment(
    environ: Mapping[str, str] = os.environ, allowed_subjects: Collection[str] | None = None
) -> Verifier | None:
    return verifier_from_settings(
        environ.get(ISSUER_ENV), environ.get(JWKS_ENV), environ.get(AUDIENCE_ENV), allowed_subjects
    )


# --- sending ----------------------------------------------------------------------------------------


@dataclass
class TokenFile:
    """A sender's token, in a file the platform replaces before the token expires (on
    Kubernetes, a projected ServiceAccount token): read again whenever the file changed."""

    path: str
    _version: Any = field(default=None, repr=False)
    _token: str = field(default="", repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self) -> str:
        """The current token; OSError or ValueError when the file is missing or empty."""
        with self._lock:
            status = os.stat(self.path)
            version = (status.st_ino, status.st_mtime_ns, status.st_size)
            if version != self._version:
                token = Path(self.path).read_text().strip()
                if not token:
                    raise ValueError(f"the token file {self.path} is empty")
                self._token, self._version = token, version
            return self._token

    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read()}"}
