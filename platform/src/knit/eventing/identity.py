"""Sender identity for event delivery, as Knative Eventing's OIDC feature has it (pure logic).

Every sender of events has an identity, named as Kubernetes names a ServiceAccount:

- an instance of a Service sends as its Revision's ServiceAccount,
  `system:serviceaccount:<namespace>:<serviceAccountName>` (`default` when unset);
- the dispatcher of a KafkaSource, Trigger or PingSource sends as a ServiceAccount of its
  own, named as Knative names the one it creates per source: `<name>-oidc-<group>-<kind>`,
  e.g. `system:serviceaccount:default:danmaku-comments-oidc-sources.knit.dev-kafkasource`.

Every addressable object announces an audience, `<group>/<kind>/<namespace>/<name>` in
lower case (Knative's GetAudience), e.g. `serving.knit.dev/service/default/danmaku-web`.
A sender presents `Authorization: Bearer <JWT>`: signed by the platform's issuer, with
`iss` (the issuer), `sub` (the sender's identity), `aud` (the sink's audience), `iat`
and `exp`. The sink checks signature, issuer, audience and time, then decides whether
that sender may send to it.

This module names identities and audiences, issues tokens (Issuer: an ES256 key pair,
its JWKS) and verifies them. Time is a parameter; no files, no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from knit.resources.model import KINDS, Resource, api_group

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
LOCAL_ISSUER = "urn:knit:local"  # the local runtime's issuer (iss)
TOKEN_LIFETIME = 3600.0  # seconds; the holder of a token file gets a fresh one well before then
SIGNING_ALGORITHM = "ES256"
# What a verifier accepts: asymmetric algorithms only, so neither `none` nor an HMAC signed
# with the public key as its secret can pass.
ALGORITHMS = ("ES256", "RS256")
LEEWAY = 10.0  # seconds of clock difference tolerated on exp and iat
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp")


# --- names ------------------------------------------------------------------------------


def audience(group: str, kind: str, namespace: str, name: str) -> str:
    """Knative's audience of an addressable: `<group>/<kind>/<namespace>/<name>`, lower case."""
    return f"{group}/{kind}/{namespace}/{name}".lower()


def audience_of(kind: str, namespace: str, name: str, api_version: str | None = None) -> str:
    """The audience of an object knit knows by kind (Service, Broker, …). It always names the
    knit group, also when a reference used the upstream alias (`serving.knative.dev/v1`)."""
    resource = KINDS.get(kind)
    if resource is None:
        group = api_group(api_version or "")
        return audience(group, kind, namespace, name)
    return audience(resource.GROUP, kind, namespace, name)


def audience_of_resource(resource: Resource) -> str:
    return audience(type(resource).GROUP, resource.kind, resource.namespace, resource.name)


def service_account_subject(namespace: str, service_account: str) -> str:
    """How Kubernetes names a ServiceAccount in a token's `sub`."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{service_account}"


def service_identity(namespace: str, service_account: str | None) -> str:
    """The identity instances of a Service send as: their Revision's ServiceAccount."""
    return service_account_subject(namespace, service_account or "default")


def source_service_account(resource: Resource) -> str:
    """The ServiceAccount Knative makes for a source's OIDC identity: `<name>-oidc-<group>-<kind>`."""
    return f"{resource.name}-oidc-{type(resource).GROUP}-{resource.kind}".lower()


def source_identity(resource: Resource) -> str:
    """The identity a KafkaSource's, Trigger's or PingSource's dispatcher sends as."""
    return service_account_subject(resource.namespace, source_service_account(resource))


# --- issuing ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an EC or RSA public key: a stable key id."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class Issuer:
    """Signs tokens with a private key that never leaves this object; publishes the public
    half as a JWKS. A new Issuer makes a new P-256 key pair unless given one."""

    def __init__(
        self,
        name: str = LOCAL_ISSUER,
        *,
        lifetime: float = TOKEN_LIFETIME,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> None:
        if lifetime <= 0:
            raise ValueError(f"a token lifetime must be a positive number of seconds; got {lifetime!r}")
        self.name = name
        self.lifetime = lifetime
        self._key = key or ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.kid = thumbprint(public)
        self._jwk = {**public, "kid": self.kid, "use": "sig", "alg": SIGNING_ALGORITHM}

    def jwks(self) -> dict[str, Any]:
        """The public keys, as a JSON Web Key Set (what a sink verifies with)."""
        return {"keys": [dict(self._jwk)]}

    def claims(self, subject: str, audience: str, now: float) -> dict[str, Any]:
        issued = math.floor(now)
        return {"iss": self.name, "sub": subject, "aud": audience, "iat": issued, "exp": issued + int(self.lifetime)}

    def issue(self, subject: str, audience: str, now: float) -> str:
        """A signed token for `subject` to present to `audience`, valid from `now` for `lifetime`."""
        if not subject or not audience:
            raise ValueError("a token needs a subject and an audience")
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(self.claims(subject, audience, now), self._key, algorithm=SIGNING_ALGORITHM, headers=headers)


# --- verifying ----------------------------------------------------------------------------


class InvalidToken(ValueError):
    """A token that proves nothing; the message says why, for logs and for the 401's body."""


@dataclass(frozen=True)
class Claims:
    issuer: str
    subject: str
    audience: tuple[str, ...]
    issued_at: float
    expires_at: float


def key_set(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """A JWKS as {kid: key}, keeping only signing keys of the accepted algorithms."""
    keys = {}
    for entry in jwks.get("keys", []):
        try:
            key = jwt.PyJWK.from_dict(dict(entry))
        except jwt.PyJWTError:
            continue
        if key.key_id and key.algorithm_name in ALGORITHMS and entry.get("use", "sig") == "sig":
            keys[key.key_id] = key
    return keys


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the token's {name} claim must be a number of seconds; got {value!r}")
    return float(value)


def verify_token(
    token: str,
    keys: Mapping[str, jwt.PyJWK],
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = LEEWAY,
) -> Claims:
    """The claims of a token that is signed by one of `keys`, from `issuer`, for `audience`
    and valid at `now`; InvalidToken otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"the token is not a JWT: {error}") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise InvalidToken(f"the token's algorithm {alg!r} is not accepted; use one of {', '.join(ALGORITHMS)}")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken(f"the token was signed with a key this sink does not know (kid {kid!r})")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=issuer,
            audience=audience,
            # Time is checked below against `now`, so it can be given.
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidAudienceError:
        raise InvalidToken(f"the token is not for this sink: its audience must be {audience!r}") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken(f"the token was not issued by {issuer!r}") from None
    except jwt.PyJWTError as error:
        raise InvalidToken(f"the token is invalid: {error}") from None
    expires, issued = _number(claims, "exp"), _number(claims, "iat")
    if now > expires + leeway:
        raise InvalidToken(f"the token expired {now - expires:.0f} s ago")
    if issued > now + leeway:
        raise InvalidToken("the token was issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise InvalidToken("the token is not valid yet")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token names no subject (sub)")
    audiences = claims["aud"]
    return Claims(
        issuer=claims["iss"],
        subject=subject,
        audience=(audiences,) if isinstance(audiences, str) else tuple(audiences),
        issued_at=issued,
        expires_at=expires,
    )
