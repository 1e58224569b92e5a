"""POST /events accepts only the processor: who sent an event decides whether it is shown,
and a rejection reaches one connected session, never a room."""

from __future__ import annotations

import time

import pytest

from danmaku_events import events
from danmaku_events.comment import Comment
from danmaku_web.app import create_app
from knit.eventing.identity import service_identity
from knit.testing.identity import TestIssuer

PROCESSOR = service_identity("default", "danmaku-processor")
WEB_AUDIENCE = "serving.knit.dev/service/default/danmaku-web"
FORGED = Comment(id="f0f0f0", room="music", text="FREE FOLLOWERS", ts=1_767_000_000_000)


def _nothing_happened(client, socket, received) -> None:
    assert client.get("/api/rooms/music/history").json == {"items": []}
    assert received(socket) == []


def test_the_processors_token_gets_a_comment_shown_and_kept(client, connect, deliver, received):
    socket = connect("music")
    response = deliver(events.published(FORGED))
    assert response.status_code == 200
    assert received(socket) == [("danmaku", FORGED.to_dict())]
    assert client.get("/api/rooms/music/history").json == {"items": [FORGED.to_dict()]}


def test_an_event_without_a_token_is_refused_with_401_and_shown_to_nobody(client, connect, deliver, received):
    socket = connect("music")
    response = deliver(events.published(FORGED), headers={})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert "Authorization: Bearer" in response.json["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="events"'
    _nothing_happened(client, socket, received)


def test_a_token_of_another_sender_is_refused_with_403_and_shown_to_nobody(
    client, connect, deliver, received, oidc_issuer
):
    socket = connect("music")
    other = service_identity("default", "danmaku-web")
    response = deliver(events.published(FORGED), headers=oidc_issuer.authorization(other, WEB_AUDIENCE))
    assert response.status_code == 403
    assert response.json["error"] == {
        "code": "sender_not_allowed",
        "message": f"{other} may not send events to this sink",
    }
    _nothing_happened(client, socket, received)


@pytest.fixture
def attacker(tmp_path) -> TestIssuer:
    """An issuer of the same name with a key pair of its own."""
    return TestIssuer(tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("why", "authorization"),
    [
        ("another audience", lambda ours, _: ours.authorization(PROCESSOR, "serving.knit.dev/service/default/other")),
        ("expired", lambda ours, _: ours.authorization(PROCESSOR, WEB_AUDIENCE, now=time.time() - 7200)),
        ("another key", lambda _, theirs: theirs.authorization(PROCESSOR, WEB_AUDIENCE)),
        ("not a JWT", lambda *_: {"Authorization": "Bearer not-a-token"}),
        ("Basic", lambda *_: {"Authorization": "Basic cHJvY2Vzc29yOnNlY3JldA=="}),
        ("Bearer alone", lambda *_: {"Authorization": "Bearer"}),
    ],
)
def test_a_token_that_proves_nothing_is_refused_with_401(
    client, connect, deliver, received, oidc_issuer, attacker, why, authorization
):
    socket = connect("music")
    response = deliver(events.published(FORGED), headers=authorization(oidc_issuer, attacker))
    assert response.status_code == 401, why
    assert response.json["error"]["code"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    _nothing_happened(client, socket, received)


def test_without_keys_to_verify_with_every_event_is_refused_with_503_saying_what_to_set(publisher, oidc_issuer):
    # given the app run without knit's settings
    app = create_app({"ASYNC_MODE": "threading", "EVENT_SENDERS": PROCESSOR}, publisher=publisher)
    message = events.to_http(events.published(FORGED))
    headers = {**message.headers, **oidc_issuer.authorization(PROCESSOR, WEB_AUDIENCE)}
    # when the processor's event arrives
    response = app.test_client().post("/events", data=message.body, headers=headers)
    # then
    assert response.status_code == 503
    assert response.json["error"]["code"] == "auth_not_configured"
    assert "K_OIDC_ISSUER, K_OIDC_JWKS and K_AUDIENCE" in response.json["error"]["message"]
    assert app.test_client().get("/api/rooms/music/history").json == {"items": []}


def test_half_the_verification_settings_is_a_mistake_named_at_start(publisher, oidc_issuer):
    with pytest.raises(ValueError, match="K_AUDIENCE is not set"):
        create_app({"OIDC_ISSUER": oidc_issuer.name, "OIDC_JWKS": str(oidc_issuer.jwks_path)}, publisher=publisher)


def test_with_no_sender_allowed_even_the_processor_is_refused(publisher, oidc_issuer):
    settings = {"ASYNC_MODE": "threading", "OIDC_ISSUER": oidc_issuer.name, "AUDIENCE": WEB_AUDIENCE}
    app = create_app({**settings, "OIDC_JWKS": str(oidc_issuer.jwks_path)}, publisher=publisher)
    message = events.to_http(events.published(FORGED))
    headers = {**message.headers, **oidc_issuer.authorization(PROCESSOR, WEB_AUDIENCE)}
    assert app.test_client().post("/events", data=message.body, headers=headers).status_code == 403


# --- rejected: one connected session, never a room ----------------------------------------------


def _rejection(sender: str | None) -> object:
    return events.rejected("3f2a9c", "music", "blocked_word", "contains a blocked word", sender)


def test_a_rejection_addressed_to_a_room_reaches_nobody_in_it(connect, deliver, received):
    # given two sessions in the room
    first, second = connect("music"), connect("music")
    # when a rejection (with the processor's own token) names the room as its sender
    response = deliver(_rejection("music"))
    # then it is acknowledged, and nobody in the room gets it
    assert response.status_code == 200
    assert received(first) == [] and received(second) == []


def test_a_rejection_addressed_to_a_room_named_like_a_session_id_reaches_nobody(connect, deliver, received):
    room = "abcdefghij0123456789"  # 20 characters, the form of a session id
    member = connect(room)
    deliver(_rejection(room))
    assert received(member) == []


def _session_of(socket, publisher) -> str:
    """The session id of a test client, as the processor would get it with its comment."""
    assert socket.emit("send", {"room": "music", "text": "hello"}, callback=True)["ok"]
    return publisher.published[-1][1]


def test_a_session_whose_id_is_also_a_room_others_are_in_gets_no_rejection(
    app, connect, deliver, received, monkeypatch
):
    # given a room whose name has the form of a session id, with a member, and then a session
    # that happens to get that very id (python-socketio lets nobody join a session's room,
    # but a room may be there first)
    room = "abcdefghij0123456789"
    member = connect(room)
    monkeypatch.setattr(app.extensions["socketio"].server.eio, "generate_id", lambda: room)
    unlucky = connect("music")
    # when a rejection names that id
    deliver(_rejection(room))
    # then an emit would reach the room's member too, so it goes to nobody
    assert received(member) == [] and received(unlucky) == []


def test_a_rejection_for_a_session_that_left_reaches_nobody(connect, deliver, received, publisher):
    sender, neighbour = connect("music"), connect("music")
    sender_sid = _session_of(sender, publisher)
    sender.disconnect()
    response = deliver(_rejection(sender_sid))
    assert response.status_code == 200
    assert received(neighbour) == []
