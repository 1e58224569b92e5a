"""Sender identity: how senders and sinks are named, tokens issued and verified, token
files kept fresh, and what the local runtime hands each process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import stat
import textwrap
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from knit.admission import load_manifests
from knit.control.desired import Oidc, binding_for, dispatcher_config, ping_config, trigger_config
from knit.eventing.identity import (
    InvalidToken,
    Issuer,
    audience_of,
    key_set,
    service_identity,
    source_identity,
    verify_token,
)
from knit.runtimes.local.oidc import TokenFiles
from knit.runtimes.local.plan import instance_plan
from knit.serving.revisions import revision_for

NOW = 1_767_000_000.0
WEB = "serving.knit.dev/service/default/danmaku-web"
PROCESSOR = "system:serviceaccount:default:danmaku-processor"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def verify(issuer: Issuer, token: str, audience: str = WEB, now: float = NOW, keys=None):
    return verify_token(token, keys or key_set(issuer.jwks()), issuer=issuer.name, audience=audience, now=now)


# --- names ----------------------------------------------------------------------------------


def test_an_addressables_audience_is_group_kind_namespace_name_in_lower_case():
    assert audience_of("Service", "default", "danmaku-web") == WEB
    assert audience_of("Broker", "team-a", "default") == "eventing.knit.dev/broker/team-a/default"
    # A reference through the upstream alias names the same object, so the same audience.
    assert audience_of("Service", "default", "web", "serving.knative.dev/v1") == "serving.knit.dev/service/default/web"


def test_a_service_sends_as_its_service_account_and_a_source_as_its_own(manifests):
    assert service_identity("default", "danmaku-processor") == PROCESSOR
    assert service_identity("default", None) == "system:serviceaccount:default:default"
    account = "system:serviceaccount:default:"
    assert source_identity(manifests.kafka_sources[0]) == account + "feed-oidc-sources.knit.dev-kafkasource"
    assert source_identity(manifests.triggers[0]) == account + "audit-oidc-eventing.knit.dev-trigger"
    assert source_identity(manifests.ping_sources[0]) == account + "tick-oidc-sources.knit.dev-pingsource"


# --- issuing and verifying --------------------------------------------------------------------


def test_a_token_round_trips_with_its_claims(issuer):
    token = issuer.issue(PROCESSOR, WEB, NOW)
    claims = verify(issuer, token, now=NOW + 60)
    assert (claims.issuer, claims.subject, claims.audience) == (issuer.name, PROCESSOR, (WEB,))
    assert (claims.issued_at, claims.expires_at) == (NOW, NOW + 3600)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": issuer.kid, "typ": "JWT"}


def test_the_jwks_holds_the_public_key_only(issuer):
    (key,) = issuer.jwks()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert key["kid"] == issuer.kid


def test_a_token_for_another_audience_proves_nothing(issuer):
    with pytest.raises(InvalidToken, match=re.escape(f"its audience must be {WEB!r}")):
        verify(issuer, issuer.issue(PROCESSOR, "serving.knit.dev/service/default/other", NOW))


def test_an_expired_token_proves_nothing_after_the_leeway(issuer):
    token = issuer.issue(PROCESSOR, WEB, NOW)
    assert verify(issuer, token, now=NOW + 3600 + 9).subject == PROCESSOR
    with pytest.raises(InvalidToken, match="expired"):
        verify(issuer, token, now=NOW + 3600 + 11)


def test_a_token_issued_in_the_future_proves_nothing(issuer):
    with pytest.raises(InvalidToken, match="future"):
        verify(issuer, issuer.issue(PROCESSOR, WEB, NOW + 120))


def test_a_token_of_another_key_proves_nothing_even_with_the_same_issuer_name_and_kid(issuer):
    other = Issuer(issuer.name)
    with pytest.raises(InvalidToken, match="does not know"):
        verify(issuer, other.issue(PROCESSOR, WEB, NOW))
    # The same kid as ours on a token signed by another key: the signature fails.
    forged = jwt.encode(other.claims(PROCESSOR, WEB, NOW), other._key, algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verify(issuer, forged)


def test_a_token_from_another_issuer_proves_nothing(issuer):
    stranger = Issuer("https://elsewhere.example")
    token = stranger.issue(PROCESSOR, WEB, NOW)
    with pytest.raises(InvalidToken, match="not issued by 'urn:knit:local'"):
        verify_token(token, key_set(stranger.jwks()), issuer=issuer.name, audience=WEB, now=NOW)


def test_alg_none_is_refused(issuer):
    token = jwt.encode(issuer.claims(PROCESSOR, WEB, NOW), None, algorithm="none", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="'none' is not accepted"):
        verify(issuer, token)


def test_an_hmac_keyed_with_the_public_key_is_refused(issuer):
    public_pem = issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (header, issuer.claims(PROCESSOR, WEB, NOW))
    )
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(InvalidToken, match="'HS256' is not accepted"):
        verify(issuer, (signing_input + b"." + signature).decode())


def test_a_tampered_token_proves_nothing(issuer):
    header, payload, signature = issuer.issue("system:serviceaccount:default:default", WEB, NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = PROCESSOR
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verify(issuer, f"{header}.{tampered}.{signature}")


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b", "a.b.c"])
def test_something_that_is_not_a_jwt_proves_nothing(issuer, token):
    with pytest.raises(InvalidToken):
        verify(issuer, token)


def test_a_token_missing_a_claim_proves_nothing(issuer):
    claims = issuer.claims(PROCESSOR, WEB, NOW)
    del claims["exp"]
    token = jwt.encode(claims, issuer._key, algorithm="ES256", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match='"exp"'):
        verify(issuer, token)


# --- token files ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_token_files_are_private_and_renewed_at_half_their_lifetime(tmp_path, issuer):
    clock = Clock()
    files = TokenFiles(tmp_path / "oidc", issuer, clock)
    path = files.token_file(PROCESSOR, WEB)
    first = Path(path).read_text().strip()
    assert stat.S_IMODE((tmp_path / "oidc").stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert verify(issuer, first).subject == PROCESSOR
    assert json.loads(files.jwks_path.read_text()) == issuer.jwks()
    # the same sender and audience get the same file
    assert files.token_file(PROCESSOR, WEB) == path
    # not renewed before half the lifetime, renewed at it, and the new token is valid later
    clock.now = NOW + 1799
    assert files.renew() == 0
    clock.now = NOW + 1800
    assert files.renew() == 1
    renewed = Path(path).read_text().strip()
    assert renewed != first
    assert verify(issuer, renewed, now=NOW + 3600 + 1000).subject == PROCESSOR


def test_removing_the_token_files_leaves_no_token_behind(tmp_path, issuer):
    files = TokenFiles(tmp_path / "oidc", issuer)
    files.token_file(PROCESSOR, WEB)
    files.remove()
    assert list((tmp_path / "oidc").rglob("*.jwt")) == [] and not files.jwks_path.exists()


# --- what the runtime hands each process -----------------------------------------------------------

MANIFESTS = """
apiVersion: serving.knit.dev/v1
kind: Service
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{image: web, command: [web]}]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: worker}
spec:
  template:
    spec:
      serviceAccountName: moderation
      containers: [{image: w, command: [worker]}]
---
apiVersion: sources.knit.dev/v1
kind: SinkBinding
metadata: {name: results}
spec:
  subject: {apiVersion: serving.knit.dev/v1, kind: Service, name: worker}
  sink: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: web}, uri: /events}
---
apiVersion: sources.knit.dev/v1
kind: KafkaSource
metadata: {name: feed}
spec:
  bootstrapServers: [kafka:9092]
  topics: [a]
  sink: {ref: {apiVersion: serving.knit.dev/v1, kind: Service, name: worker}}
  delivery:
    deadLetterSink: {uri: "http://127.0.0.1:9/dead", audience: dead-letters}
---
apiVersion: eventing.knit.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knit.dev/v1
kind: Trigger
metadata: {name: audit}
spec:
  broker: default
  subscriber: {uri: "http://127.0.0.1:9/audit"}
---
apiVersion: sources.knit.dev/v1
kind: PingSource
metadata: {name: tick}
spec:
  schedule: "@every 1s"
  sink: {ref: {apiVersion: serving.knit.dev/v1, kind: Service, name: web}}
"""


@pytest.fixture
def manifests(tmp_path):
    (tmp_path / "all.yaml").write_text(textwrap.dedent(MANIFESTS))
    return load_manifests([tmp_path])


def address_of(kind, namespace, name):
    return f"http://127.0.0.1:9/{kind}/{namespace}/{name}"


class RecordingOidc:
    """An Oidc whose token files are named after what they hold."""

    def __init__(self) -> None:
        self.issued: list[tuple[str, str]] = []
        self.oidc = Oidc("urn:knit:local", "/state/oidc/jwks.json", self.token_file)

    def token_file(self, subject: str, audience: str) -> str:
        self.issued.append((subject, audience))
        return f"/tokens/{subject}/{audience}"


def plan_of(manifests, name, oidc):
    service = manifests.service(name)
    binding = binding_for(service.name, service.namespace, manifests.sink_bindings)
    revision = revision_for(service, [])
    return instance_plan(f"{revision.name}/1", revision, manifests.folder_of(service), 9001, "k:9092", binding,
                         address_of, {}, oidc)  # fmt: skip


def test_every_instance_learns_how_to_verify_what_is_sent_to_it(manifests):
    oidc = RecordingOidc()
    env = plan_of(manifests, "web", oidc.oidc).env
    assert {k: env[k] for k in ("K_OIDC_ISSUER", "K_OIDC_JWKS", "K_AUDIENCE")} == {
        "K_OIDC_ISSUER": "urn:knit:local",
        "K_OIDC_JWKS": "/state/oidc/jwks.json",
        "K_AUDIENCE": "serving.knit.dev/service/default/web",
    }
    assert "K_OIDC_TOKEN_FILE" not in env and oidc.issued == []


def test_a_sink_bindings_subject_gets_its_token_for_k_sink_as_its_service_account(manifests):
    oidc = RecordingOidc()
    env = plan_of(manifests, "worker", oidc.oidc).env
    sender, audience = "system:serviceaccount:default:moderation", "serving.knit.dev/service/default/web"
    assert env["K_SINK_AUDIENCE"] == audience
    assert env["K_OIDC_TOKEN_FILE"] == f"/tokens/{sender}/{audience}"
    assert env["K_AUDIENCE"] == "serving.knit.dev/service/default/worker"


def test_without_an_issuer_nothing_about_identity_is_set(manifests):
    env = plan_of(manifests, "worker", None).env
    assert not {k for k in env if k.startswith("K_OIDC") or k in ("K_AUDIENCE", "K_SINK_AUDIENCE")}


def test_a_dispatcher_gets_a_token_file_for_each_destination_with_an_audience(manifests):
    oidc = RecordingOidc()
    config = dispatcher_config(manifests.kafka_sources[0], "k:9092", address_of, oidc.oidc)
    sender = "system:serviceaccount:default:feed-oidc-sources.knit.dev-kafkasource"
    assert config.identity == sender
    assert config.sink_token_file == f"/tokens/{sender}/serving.knit.dev/service/default/worker"
    assert config.dead_letter_sink_token_file == f"/tokens/{sender}/dead-letters"
    assert type(config).from_json(config.to_json()) == config


def test_a_trigger_sends_no_token_to_a_bare_uri_and_its_own_to_the_broker_with_replies(manifests):
    oidc = RecordingOidc()
    broker = manifests.brokers[0]
    config = trigger_config(manifests.triggers[0], broker, "k:9092", address_of, oidc.oidc)
    assert config.sink_token_file is None
    assert config.reply_token_file == (
        "/tokens/system:serviceaccount:default:audit-oidc-eventing.knit.dev-trigger/eventing.knit.dev/broker/default/default"
    )


def test_a_ping_source_gets_its_token_for_its_sink(manifests):
    oidc = RecordingOidc()
    config = ping_config(manifests.ping_sources[0], address_of, oidc.oidc)
    assert config.sink_token_file == (
        "/tokens/system:serviceaccount:default:tick-oidc-sources.knit.dev-pingsource/serving.knit.dev/service/default/web"
    )
    assert type(config).from_json(config.to_json()) == config
