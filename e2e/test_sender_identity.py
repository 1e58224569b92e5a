"""Authenticated event delivery on the local runtime running manifests/app: whoever can
reach the gateway cannot forge the processor's verdicts, while real comments go through
with the tokens the platform hands the dispatcher and the processor."""

from __future__ import annotations

import json
import queue
import uuid

import pytest
import requests
import socketio

pytestmark = pytest.mark.integration

WEB_HOST = "danmaku-web.default.localhost"


def _forged_published(room: str, text: str) -> tuple[dict[str, str], bytes]:
    comment_id = uuid.uuid4().hex
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "dev.danmaku.comment.published",
        "ce-source": "/danmaku-processor",
        "ce-id": comment_id,
        "content-type": "application/json",
    }
    body = {"id": comment_id, "room": room, "text": text, "color": "#FFFFFF", "mode": "scroll", "size": "normal",
            "nick": "", "ts": 1_767_000_000_000}  # fmt: skip
    return headers, json.dumps(body).encode()


def _history(running_app, room: str) -> list[dict]:
    url = f"{running_app.gateway}/api/rooms/{room}/history"
    return requests.get(url, headers={"Host": WEB_HOST}, timeout=10).json()["items"]


def test_each_service_announces_its_audience(running_app):
    assert (
        running_app.describe("danmaku-web")["status"]["address"]["audience"]
        == "serving.knit.dev/service/default/danmaku-web"
    )
    assert running_app.describe("danmaku-processor")["status"]["address"]["audience"] == (
        "serving.knit.dev/service/default/danmaku-processor"
    )


def test_a_forged_verdict_through_the_gateway_is_refused_and_a_real_comment_still_goes_through(running_app):
    # given a browser in a room
    room = f"auth-{uuid.uuid4().hex[:8]}"
    seen: queue.Queue[dict] = queue.Queue()
    client = socketio.Client()
    client.on("danmaku", seen.put)
    client.connect(running_app.url("danmaku-web"), transports=["websocket"])
    try:
        assert client.call("join", {"room": room}, timeout=10)["ok"]
        # when anyone who reaches the gateway POSTs a published event for the room
        headers, body = _forged_published(room, "FORGED")
        forged = requests.post(
            f"{running_app.gateway}/events", data=body, headers={**headers, "Host": WEB_HOST}, timeout=10
        )
        # then it is refused, kept nowhere and shown to nobody
        assert forged.status_code == 401, forged.text
        assert forged.json()["error"]["code"] == "missing_token"
        assert _history(running_app, room) == []
        # while a comment sent the real way comes back published, and is kept
        url = f"{running_app.gateway}/api/rooms/{room}/danmaku"
        posted = requests.post(url, json={"text": "genuine"}, headers={"Host": WEB_HOST}, timeout=10)
        assert posted.status_code == 202, posted.text
        arrived = seen.get(timeout=30)
        assert (arrived["id"], arrived["text"]) == (posted.json()["id"], "genuine")
        assert [item["text"] for item in _history(running_app, room)] == ["genuine"]
    finally:
        client.disconnect()


def test_the_processor_takes_no_event_without_a_platform_token(running_app):
    room = f"auth-{uuid.uuid4().hex[:8]}"
    headers, body = _forged_published(room, "laundered")
    headers["ce-type"] = "dev.danmaku.comment.submitted"
    response = requests.post(running_app.url("danmaku-processor"), data=body, headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    assert _history(running_app, room) == []
