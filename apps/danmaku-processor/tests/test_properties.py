"""Properties of the processor's `POST /`: whatever a client sends, while the sink works
the answer is never a 500 (which the dispatcher would retry for minutes, holding the
partition); an event it cannot handle is a 4xx with the error body."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danmaku_events import events
from danmaku_processor import routes
from danmaku_processor.app import create_app

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


class FineSink:
    """Takes every result, as a healthy danmaku-web does."""

    def __init__(self) -> None:
        self.sent = []

    def send(self, event) -> None:
        self.sent.append(event)


@pytest.fixture(scope="module")
def client():
    app = create_app({"TESTING": True})
    app.extensions[routes.SINK] = FineSink()
    return app.test_client()


COMMENT_FIELDS = ["id", "room", "text", "color", "mode", "size", "nick", "ts", "extra"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=150)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
comments = st.dictionaries(st.sampled_from(COMMENT_FIELDS), json_values | st.sampled_from(["c-1", "lobby", "hi"]))


@st.composite
def nested(draw):
    depth = draw(st.integers(0, 3000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return (opening * depth + "1" + closing * draw(st.integers(0, depth))).encode()


# Header values as an HTTP server passes them on: printable latin-1, no line breaks.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
header_names = st.sampled_from(
    ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-danmakusender", "ce-subject", "ce-", "ce-data"]
) | st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
header_values = (
    st.sampled_from(
        ["1.0", "c-1", events.SUBMITTED, "/danmaku-web/rooms/lobby", "2024-05-01T12:00:00Z", "application/json"]
    )
    | header_text
)
content_types = st.sampled_from(
    ["application/json", "application/cloudevents+json", "text/plain", "application/octet-stream", "text/json", ""]
)
bodies = (
    st.binary(max_size=300)
    | comments.map(lambda c: json.dumps(c).encode())
    | nested()
    | st.dictionaries(
        st.sampled_from(["specversion", "id", "source", "type", "time", "data", "data_base64", "danmakusender"]),
        json_values | st.sampled_from(["1.0", "c-1", "/s", events.SUBMITTED]),
    ).map(lambda e: json.dumps(e).encode())
)


def assert_answered_without_a_server_error(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


@SETTINGS
@given(
    headers=st.dictionaries(header_names, header_values, max_size=8),
    content_type=content_types,
    body=bodies,
)
def test_any_request_is_answered_without_a_server_error(client, headers, content_type, body):
    response = client.post("/", headers={**headers, "Content-Type": content_type}, data=body)
    assert_answered_without_a_server_error(response)


@SETTINGS
@given(data=comments | json_values | nested().map(bytes.decode), sender=header_values)
def test_any_submitted_event_is_published_rejected_or_refused_with_a_4xx(client, data, sender):
    headers = {
        "ce-specversion": "1.0",
        "ce-type": events.SUBMITTED,
        "ce-source": "/danmaku-web/rooms/lobby",
        "ce-id": "c-1",
        "ce-danmakusender": sender,
        "content-type": "application/json",
    }
    body = data.encode() if isinstance(data, str) else json.dumps(data).encode()
    response = client.post("/", headers=headers, data=body)
    assert_answered_without_a_server_error(response)
    if response.status_code == 200:
        assert response.json["type"] in (events.PUBLISHED, events.REJECTED)
