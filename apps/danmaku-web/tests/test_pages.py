"""The page, its static files, and the health probes."""

from __future__ import annotations

import pytest

SELECTORS = (
    "stage",
    "comment-input",
    "color",
    "mode",
    "send",
    "status",
    "notice",
    "pause",
    "clear",
    "hide",
    "opacity",
    "speed",
)


@pytest.mark.parametrize(("path", "room"), [("/", "lobby"), ("/r/music-2", "music-2")])
def test_the_page_names_its_room_and_carries_the_stable_selectors(client, path, room):
    response = client.get(path)
    assert response.status_code == 200
    assert f'data-room="{room}"' in response.text
    for selector in SELECTORS:
        assert f'data-testid="{selector}"' in response.text


def test_the_page_forbids_inline_and_foreign_scripts(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy


def test_a_page_for_an_invalid_room_is_not_found(client):
    response = client.get("/r/Music%20Room")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "invalid_room"
    assert "'Music Room'" in response.json["error"]["message"]


@pytest.mark.parametrize("path", ["/static/app.js", "/static/app.css", "/static/vendor/socket.io.min.js"])
def test_the_pages_static_files_are_served(client, path):
    assert client.get(path).status_code == 200


def test_the_page_script_puts_comment_text_in_the_dom_only_as_text(client):
    script = client.get("/static/app.js").text
    assert "textContent = comment.text" in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


def test_an_unknown_path_answers_in_the_error_shape(client):
    response = client.get("/api/rooms")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_healthz_answers_while_the_process_runs(client, publisher):
    publisher.failure = "no Kafka broker answered at 10.0.0.9:9092"
    assert client.get("/healthz").status_code == 200


def test_readyz_is_ready_when_kafka_is_reachable(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready"}


def test_readyz_is_unavailable_with_the_reason_when_kafka_is_not(client, publisher):
    publisher.failure = "no Kafka broker answered at 10.0.0.9:9092 ([Errno 111] Connection refused)"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"error": {"code": "unavailable", "message": publisher.failure}}
