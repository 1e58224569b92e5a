"""Sender identity at the processor: only the platform's senders may POST events, and its
results go to K_SINK with the token the platform keeps in K_OIDC_TOKEN_FILE."""

from __future__ import annotations

import json
import os

import pytest

from danmaku_events import events
from danmaku_processor.app import create_app
from knit.eventing.identity import audience_of, service_identity

PROCESSOR_AUDIENCE = audience_of("Service", "default", "danmaku-processor")
WEB_AUDIENCE = audience_of("Service", "default", "danmaku-web")
PROCESSOR = service_identity("default", "danmaku-processor")
# The KafkaSource danmaku-comments' dispatcher.
DISPATCHER = "system:serviceaccount:default:danmaku-comments-oidc-sources.knit.dev-kafkasource"
COMMENT = {"id": "01JDQ8M4ZP7Y", "room": "music", "text": "nice riff", "ts": 1732700000000}


def _settings(issuer, token_file=None) -> dict[str, object]:
    """What the local runtime gives the processor (create_app takes them as config too)."""
    return {**issuer.env(PROCESSOR_AUDIENCE), "K_OIDC_TOKEN_FILE": str(token_file) if token_file else None}


@pytest.fixture
def token_file(oidc_issuer):
    return oidc_issuer.token_file(PROCESSOR, WEB_AUDIENCE)


@pytest.fixture
def client(sink, oidc_issuer, token_file):
    return create_app({"K_SINK": sink.url, **_settings(oidc_issuer, token_file)}).test_client()


def post(client, headers: dict[str, str]):
    attributes = {"ce-specversion": "1.0", "ce-type": events.SUBMITTED, "ce-source": "/danmaku-web/rooms/music",
                  "ce-id": COMMENT["id"], "content-type": "application/json"}  # fmt: skip
    return client.post("/", headers={**attributes, **headers}, data=json.dumps(COMMENT))


def test_the_dispatchers_event_is_processed_and_the_result_carries_the_processors_token(
    client, sink, oidc_issuer, token_file
):
    response = post(client, oidc_issuer.authorization(DISPATCHER, PROCESSOR_AUDIENCE))
    assert response.status_code == 200
    ((headers, _),) = sink.requests
    assert headers["Authorization"] == f"Bearer {token_file.read_text().strip()}"


def test_an_event_without_a_token_is_refused_with_401_before_anything_is_sent(client, sink):
    response = post(client, {})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert sink.requests == []


def test_a_token_for_another_audience_is_refused_with_401(client, sink, oidc_issuer):
    response = post(client, oidc_issuer.authorization(DISPATCHER, WEB_AUDIENCE))
    assert response.status_code == 401
    assert (
        "tokens for this sink name 'serving.knit.dev/service/default/danmaku-processor'"
        in (response.json["error"]["message"])
    )
    assert sink.requests == []


def test_the_probes_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_renewed_token_file_is_read_again(client, sink, oidc_issuer, token_file):
    post(client, oidc_issuer.authorization(DISPATCHER, PROCESSOR_AUDIENCE))
    renewed = oidc_issuer.token(PROCESSOR, WEB_AUDIENCE, now=1_800_000_000)
    token_file.write_text(renewed + "\n")
    os.utime(token_file, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    post(client, oidc_issuer.authorization(DISPATCHER, PROCESSOR_AUDIENCE))
    assert sink.requests[-1][0]["Authorization"] == f"Bearer {renewed}"


def test_a_missing_token_file_is_a_502_so_the_event_is_delivered_again_later(client, sink, oidc_issuer, token_file):
    token_file.unlink()
    response = post(client, oidc_issuer.authorization(DISPATCHER, PROCESSOR_AUDIENCE))
    assert response.status_code == 502
    assert "no token to send" in response.json["error"]["message"]
    assert sink.requests == []


def test_a_token_to_vouch_with_but_nothing_to_verify_senders_with_stops_the_app(sink, token_file):
    with pytest.raises(ValueError, match="it would vouch for events from anyone"):
        create_app({"K_SINK": sink.url, "K_OIDC_TOKEN_FILE": str(token_file)})


def test_half_the_verification_settings_stops_the_app_naming_what_is_missing(sink, oidc_issuer):
    with pytest.raises(ValueError, match="K_OIDC_JWKS is not set"):
        create_app({"K_SINK": sink.url, "K_OIDC_ISSUER": oidc_issuer.name, "K_AUDIENCE": PROCESSOR_AUDIENCE})
