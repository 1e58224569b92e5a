"""danmaku_events.auth: who sent a request (401 / 403 otherwise), the issuer's keys from a
JWKS file, and a sender's token file read again when the platform renews it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from danmaku_events.auth import AuthError, KeySet, TokenFile, subjects, verifier_from_settings, verify
from knit.testing.identity import TestIssuer

NOW = 1_767_000_000.0
WEB = "serving.knit.dev/service/default/danmaku-web"
PROCESSOR = "system:serviceaccount:default:danmaku-processor"
SENDERS = frozenset({PROCESSOR})


@pytest.fixture
def keys(oidc_issuer) -> KeySet:
    return KeySet(str(oidc_issuer.jwks_path))


def check(oidc_issuer, keys, headers, now=NOW, allowed=SENDERS, audience=WEB) -> str:
    return verify(headers, audience, allowed, keys, issuer=oidc_issuer.name, now=now)


def refused(oidc_issuer, keys, headers, **kwargs) -> AuthError:
    with pytest.raises(AuthError) as caught:
        check(oidc_issuer, keys, headers, **kwargs)
    return caught.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token_names_its_sender(oidc_issuer, keys):
    headers = oidc_issuer.authorization(PROCESSOR, WEB, now=NOW)
    assert check(oidc_issuer, keys, headers) == PROCESSOR
    # any sender, when the caller allows any
    other = oidc_issuer.authorization("system:serviceaccount:default:default", WEB, now=NOW)
    assert check(oidc_issuer, keys, other, allowed=None) == "system:serviceaccount:default:default"


def test_the_header_name_and_scheme_are_case_insensitive(oidc_issuer, keys):
    token = oidc_issuer.token(PROCESSOR, WEB, now=NOW)
    assert check(oidc_issuer, keys, {"authorization": f"bearer {token}"}) == PROCESSOR


def test_a_valid_token_of_a_sender_not_allowed_is_403(oidc_issuer, keys):
    error = refused(oidc_issuer, keys, oidc_issuer.authorization("system:serviceaccount:default:web", WEB, now=NOW))
    assert (error.status, error.code) == (403, "sender_not_allowed")
    assert error.headers == {}


def test_no_authorization_header_is_401_saying_what_to_send(oidc_issuer, keys):
    error = refused(oidc_issuer, keys, {"Content-Type": "application/json"})
    assert (error.status, error.code) == (401, "missing_token")
    assert "Authorization: Bearer <token>" in error.message
    assert error.headers == {"WWW-Authenticate": 'Bearer realm="events"'}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Bearer", "one token"),
        ("Bearer ", "one token"),
        ("Bearer a b", "one token"),
        ("Basic cHJvY2Vzc29yOnNlY3JldA==", "scheme must be Bearer"),
        ("Bearer not-a-jwt", "not a JWT"),
        ("Bearer " + "x" * 9000, "one token"),
    ],
)
def test_a_malformed_authorization_header_is_401(oidc_issuer, keys, value, reason):
    error = refused(oidc_issuer, keys, {"Authorization": value})
    assert (error.status, error.code) == (401, "invalid_token")
    assert reason in error.message
    assert 'error="invalid_token"' in error.headers["WWW-Authenticate"]


def test_a_token_for_another_audience_is_401(oidc_issuer, keys):
    headers = oidc_issuer.authorization(PROCESSOR, "serving.knit.dev/service/default/danmaku-processor", now=NOW)
    error = refused(oidc_issuer, keys, headers)
    assert error.status == 401
    assert f"tokens for this sink name {WEB!r}" in error.message


def test_an_expired_token_is_401_once_past_the_leeway(oidc_issuer, keys):
    headers = oidc_issuer.authorization(PROCESSOR, WEB, now=NOW)
    assert check(oidc_issuer, keys, headers, now=NOW + 3600 + 5) == PROCESSOR
    assert "expired" in refused(oidc_issuer, keys, headers, now=NOW + 3600 + 60).message


def test_a_token_from_the_future_is_401(oidc_issuer, keys):
    headers = oidc_issuer.authorization(PROCESSOR, WEB, now=NOW + 600)
    assert "not valid yet" in refused(oidc_issuer, keys, headers).message


def test_a_token_signed_by_a_key_the_issuer_does_not_have_is_401(oidc_issuer, keys, tmp_path):
    stranger = TestIssuer(tmp_path / "stranger")  # same issuer name, a key pair of its own
    error = refused(oidc_issuer, keys, stranger.authorization(PROCESSOR, WEB, now=NOW))
    assert (error.status, error.message) == (401, "the token was not signed by a key of this platform's issuer")


def test_a_token_with_our_kid_but_another_signature_is_401(oidc_issuer, keys, tmp_path):
    stranger = TestIssuer(tmp_path / "stranger")
    claims = stranger.issuer.claims(PROCESSOR, WEB, NOW)
    forged = jwt.encode(claims, stranger.issuer._key, algorithm="ES256", headers={"kid": oidc_issuer.issuer.kid})
    assert "Signature verification failed" in refused(oidc_issuer, keys, {"Authorization": f"Bearer {forged}"}).message


def test_alg_none_is_401(oidc_issuer, keys):
    claims = oidc_issuer.issuer.claims(PROCESSOR, WEB, NOW)
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": oidc_issuer.issuer.kid})
    assert "'none' are not accepted" in refused(oidc_issuer, keys, {"Authorization": f"Bearer {token}"}).message


def test_an_hmac_keyed_with_the_public_key_is_401(oidc_issuer, keys):
    public = oidc_issuer.issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": oidc_issuer.issuer.kid}
    claims = oidc_issuer.issuer.claims(PROCESSOR, WEB, NOW)
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())
    error = refused(oidc_issuer, keys, {"Authorization": f"Bearer {signing_input}.{signature}"})
    assert "'HS256' are not accepted" in error.message


def test_a_tampered_token_is_401(oidc_issuer, keys):
    header, payload, signature = oidc_issuer.token("system:serviceaccount:default:default", WEB, now=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = PROCESSOR
    tampered = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    error = refused(oidc_issuer, keys, {"Authorization": f"Bearer {tampered}"})
    assert "Signature verification failed" in error.message


def test_a_token_from_another_issuer_is_401(oidc_issuer, keys):
    headers = oidc_issuer.authorization(PROCESSOR, WEB, now=NOW)
    with pytest.raises(AuthError, match="not issued by 'https://elsewhere'"):
        verify(headers, WEB, SENDERS, keys, issuer="https://elsewhere", now=NOW)


def test_new_keys_in_the_jwks_file_are_picked_up_when_a_token_names_one(oidc_issuer, keys, tmp_path):
    assert check(oidc_issuer, keys, oidc_issuer.authorization(PROCESSOR, WEB, now=NOW)) == PROCESSOR
    rotated = TestIssuer(tmp_path / "rotated")
    jwks = {"keys": oidc_issuer.issuer.jwks()["keys"] + rotated.issuer.jwks()["keys"]}
    oidc_issuer.jwks_path.write_text(json.dumps(jwks))
    assert check(oidc_issuer, keys, rotated.authorization(PROCESSOR, WEB, now=NOW)) == PROCESSOR


def test_keys_that_cannot_be_read_are_503(oidc_issuer, tmp_path):
    keys = KeySet(str(tmp_path / "missing.json"))
    error = refused(oidc_issuer, keys, oidc_issuer.authorization(PROCESSOR, WEB, now=NOW))
    assert (error.status, error.code) == (503, "keys_unavailable")


def test_a_file_uri_names_the_jwks_too(oidc_issuer):
    keys = KeySet(oidc_issuer.jwks_path.as_uri())
    assert check(oidc_issuer, keys, oidc_issuer.authorization(PROCESSOR, WEB, now=NOW)) == PROCESSOR


def test_settings_give_a_verifier_all_or_nothing(oidc_issuer):
    assert verifier_from_settings(None, "", None) is None
    verifier = verifier_from_settings(oidc_issuer.name, str(oidc_issuer.jwks_path), WEB, subjects(f" {PROCESSOR}, "))
    assert verifier.allowed_subjects == {PROCESSOR}
    assert verifier.verify(oidc_issuer.authorization(PROCESSOR, WEB)) == PROCESSOR
    with pytest.raises(ValueError, match="K_OIDC_ISSUER, K_AUDIENCE is not set"):
        verifier_from_settings(None, str(oidc_issuer.jwks_path), "")


def test_a_token_file_is_read_again_only_when_it_changed(tmp_path):
    path = tmp_path / "token"
    path.write_text("first\n")
    token = TokenFile(str(path))
    assert token.authorization() == {"Authorization": "Bearer first"}
    path.write_text("second\n")
    later = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(later, later))
    assert token.read() == "second"
    path.unlink()
    with pytest.raises(OSError):
        token.read()
