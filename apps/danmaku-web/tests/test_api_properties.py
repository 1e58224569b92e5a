"""Properties of the HTTP API and the Socket.IO events under arbitrary input: never a 500,
always the contract's answer."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from danmaku_web.app import create_app

# Each example builds its own app around the test's publisher, emptied first.
examples = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
comments = st.fixed_dictionaries(
    {"text": st.text(max_size=120)},
    optional={
        "nick": st.text(max_size=30),
        "color": st.sampled_from(["#FFFFFF", "#ff8800", "red"]),
        "mode": st.sampled_from(["scroll", "top", "spiral"]),
        "room": st.sampled_from(["music", "lobby"]),
    },
)
bodies = st.one_of(
    comments.map(lambda comment: json.dumps(comment).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([1, 32, 33, 999, 1001, 2040]).map(lambda depth: ("[" * depth + "]" * depth).encode()),
    st.binary(max_size=5000),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
content_types = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
# A "/" in a room would be another path (Flask redirects "//" with a 308), not another room.
rooms = st.one_of(
    st.sampled_from(["music", "lobby", "Music", "a" * 33]),
    st.text(st.characters(exclude_characters="/"), min_size=1, max_size=40),
)


def _app(publisher):
    # A burst no example reaches, so every body is judged on its merits, not the rate limit.
    publisher.published.clear()
    return create_app({"ASYNC_MODE": "threading", "RATE_LIMIT_BURST": 10**9}, publisher=publisher)


def _is_contract_error(body: object) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and set(body["error"]) == {"code", "message"}
        and all(isinstance(value, str) and value for value in body["error"].values())
    )


@examples
@given(room=rooms, body=bodies, content_type=content_types)
@example(room="music", body=b"[" * 2000 + b"]" * 2000, content_type="application/json")
@example(room="music", body=b'{"text": "hi"}' + b" " * 5000, content_type="application/json")
def test_any_post_is_answered_202_or_with_the_contracts_error_never_500(publisher, room, body, content_type):
    app = _app(publisher)
    response = app.test_client().post(
        f"/api/rooms/{quote(room, safe='')}/danmaku", data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code != 500
    if response.status_code == 202:
        [(comment, _)] = publisher.published
        assert response.json == {"id": comment.id}
    else:
        assert response.status_code in (400, 404, 405, 413, 415, 422, 429)
        assert _is_contract_error(response.json), response.data
        assert publisher.published == []


@examples
@given(event=st.sampled_from(["send", "join", "anything"]), args=st.lists(json_values | comments, max_size=3))
def test_any_socketio_event_is_acknowledged_with_ok_or_the_contracts_error(publisher, event, args):
    app = _app(publisher)
    socket = app.extensions["socketio"].test_client(app)
    ack = socket.emit(event, *args, callback=True)
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool)
    if not ack["ok"]:
        assert set(ack) == {"ok", "error"}
        assert _is_contract_error({"error": {key: ack["error"][key] for key in ("code", "message")}})
        assert ack["error"]["code"] != "internal_error"
