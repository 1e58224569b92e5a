"""The processor over HTTP: CloudEvents in at `POST /`, results delivered to a real sink."""

import json
import re

import pytest

from danmaku_events import events
from danmaku_processor.app import create_app

COMMENT = {
    "id": "01JDQ8M4ZP7Y",
    "room": "music",
    "text": "  nice   riff  ",
    "color": "#ff6600",
    "mode": "scroll",
    "size": "normal",
    "nick": "mika",
    "ts": 1732700000000,
}


@pytest.fixture
def client(sink):
    return create_app({"K_SINK": sink.url, "TESTING": True}).test_client()


def post_event(client, data, *, type=events.SUBMITTED, id=COMMENT["id"], sender="sid-42"):
    """POST a binary-mode CloudEvent, as the KafkaSource dispatcher does."""
    headers = {
        "ce-specversion": "1.0",
        "ce-type": type,
        "ce-source": "/danmaku-web/rooms/music",
        "ce-id": id,
        "ce-danmakusender": sender,
        "content-type": "application/json",
    }
    return client.post("/", headers=headers, data=json.dumps(data))


def test_a_clean_comment_is_published_normalized_with_its_id_and_sender(client, sink):
    response = post_event(client, COMMENT)

    assert response.status_code == 200
    assert response.json == {"id": COMMENT["id"], "type": events.PUBLISHED}
    [event] = sink.events()
    assert event.get_type() == events.PUBLISHED
    assert event.get_source() == events.PROCESSOR_SOURCE
    assert event.get_id() == COMMENT["id"]
    assert events.sender_of(event) == "sid-42"
    assert events.comment_of(event).to_dict() == {**COMMENT, "text": "nice riff", "color": "#FF6600"}


def test_a_structured_mode_event_is_accepted(client, sink):
    body = {
        "specversion": "1.0",
        "type": events.SUBMITTED,
        "source": "/danmaku-web/rooms/music",
        "id": COMMENT["id"],
        "datacontenttype": "application/json",
        "data": COMMENT,
    }
    response = client.post("/", data=json.dumps(body), content_type="application/cloudevents+json")

    assert response.status_code == 200
    assert [event.get_type() for event in sink.events()] == [events.PUBLISHED]


def test_a_mask_word_is_starred_out_before_publishing(client, sink):
    post_event(client, {**COMMENT, "text": "this SPAM again, 傻瓜"})

    [event] = sink.events()
    assert events.comment_of(event).text == "this **** again, **"


def test_a_reject_word_sends_a_rejection_to_the_sender(client, sink):
    response = post_event(client, {**COMMENT, "text": "just kill yourself"})

    assert response.status_code == 200
    assert response.json == {"id": COMMENT["id"], "type": events.REJECTED}
    [event] = sink.events()
    assert event.get_id() == COMMENT["id"]
    assert events.sender_of(event) == "sid-42"
    rejection = events.rejection_of(event)
    assert rejection["code"] == "blocked_word"
    assert {rejection["id"], rejection["room"]} == {COMMENT["id"], "music"}
    assert "kill" not in rejection["message"]


@pytest.mark.parametrize(
    ("field", "value", "code", "reason"),
    [
        ("text", "   \n  ", "invalid_text", "1-100 characters after trimming; got 0"),
        ("text", "草" * 101, "invalid_text", "got 101"),
        ("text", "hi\x07there", "invalid_text", "U+0007"),
        ("color", "orange", "invalid_color", "#RRGGBB"),
    ],
)
def test_a_comment_breaking_a_field_rule_is_rejected_with_that_fields_code(client, sink, field, value, code, reason):
    response = post_event(client, {**COMMENT, field: value})

    assert response.status_code == 200
    rejection = events.rejection_of(sink.events()[0])
    assert (rejection["code"], rejection["room"]) == (code, "music")
    assert reason in rejection["message"]


def test_a_request_that_is_not_a_cloudevent_is_refused(client, sink):
    response = client.post("/", json=COMMENT)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_event"
    assert "not a CloudEvent" in response.json["error"]["message"]
    assert sink.requests == []


@pytest.mark.parametrize(
    ("data", "overrides", "reason"),
    [
        (COMMENT, {"type": events.PUBLISHED}, f"expected an event of type {events.SUBMITTED}"),
        (["nice riff"], {}, "data must be a comment JSON object; got list"),
        ({k: v for k, v in COMMENT.items() if k != "room"}, {}, "room must match"),
        ({**COMMENT, "room": "Music Room"}, {}, "got 'Music Room'"),
        (COMMENT, {"id": "01JDQ8M4ZP7Z"}, "must equal the event id '01JDQ8M4ZP7Z'"),
    ],
)
def test_an_event_no_answer_can_be_addressed_for_is_refused_with_the_reason(client, sink, data, overrides, reason):
    response = post_event(client, data, **overrides)

    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_event"
    assert reason in response.json["error"]["message"]
    assert sink.requests == []


def test_an_oversized_request_is_refused_with_the_error_body(client, sink):
    response = post_event(client, {**COMMENT, "text": "草" * 30_000})

    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_entity_too_large"
    assert sink.requests == []


def test_a_sink_failure_answers_502_so_the_event_is_retried(client, sink):
    sink.status = 500

    response = post_event(client, COMMENT)

    assert response.status_code == 502
    assert response.json["error"]["code"] == "sink_unavailable"
    assert "refused '01JDQ8M4ZP7Y' with 500" in response.json["error"]["message"]


def test_an_unreachable_sink_answers_502(free_port):
    client = create_app({"K_SINK": f"http://127.0.0.1:{free_port}/events"}).test_client()

    response = post_event(client, COMMENT)

    assert response.status_code == 502
    assert "could not deliver '01JDQ8M4ZP7Y'" in response.json["error"]["message"]


def test_a_sink_slower_than_the_timeout_answers_502(sink):
    sink.delay = 0.5
    client = create_app({"K_SINK": sink.url, "SINK_TIMEOUT": 0.1}).test_client()

    response = post_event(client, COMMENT)

    assert response.status_code == 502
    assert "timed out" in response.json["error"]["message"]


def test_without_k_sink_events_are_answered_503():
    client = create_app({"K_SINK": None}).test_client()

    response = post_event(client, COMMENT)

    assert response.status_code == 503
    assert response.json["error"] == {
        "code": "sink_not_configured",
        "message": "K_SINK is not set, so results have nowhere to go; set it to the events sink's URL",
    }


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_answer_200(client, path):
    assert client.get(path).status_code == 200


def test_an_unknown_path_answers_the_error_body(client):
    response = client.get("/rooms")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_settings_come_from_prefixed_environment_variables(monkeypatch, tmp_path, sink):
    words = tmp_path / "words.txt"
    words.write_text("mask riff\n", encoding="utf-8")
    monkeypatch.setenv("K_SINK", sink.url)
    monkeypatch.setenv("DANMAKU_PROCESSOR_WORDLIST", str(words))

    post_event(create_app().test_client(), COMMENT)

    assert events.comment_of(sink.events()[0]).text == "nice ****"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"K_SINK": "danmaku-web/events"}, "K_SINK must be an http(s) URL"),
        ({"K_SINK": "http://127.0.0.1/", "SINK_TIMEOUT": "2s"}, "SINK_TIMEOUT must be a positive number"),
    ],
)
def test_a_bad_setting_stops_the_app_from_starting_with_the_value(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        create_app(config)
