"""Properties of danmaku-web's `POST /events`: whatever arrives, with the processor's token
or without, the answer is never a 500 (which the processor's sink call, and then the
dispatcher, would retry) and every error has the contract's shape."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danmaku_events import events

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=120)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
FIELDS = ["id", "room", "text", "color", "mode", "size", "nick", "ts", "code", "message"]
payloads = st.dictionaries(st.sampled_from(FIELDS), json_values | st.sampled_from(["c-1", "music", "hi", "#FFFFFF"]))


@st.composite
def nested(draw):
    depth = draw(st.integers(0, 3000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return (opening * depth + "1" + closing * draw(st.integers(0, depth))).encode()


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
header_names = st.sampled_from(
    ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-danmakusender", "ce-", "content-type"]
) | st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)
VALUES = ["1.0", "c-1", events.PUBLISHED, events.REJECTED, "/danmaku-processor", "music", "application/json"]
header_values = st.sampled_from([*VALUES, "application/cloudevents+json"]) | header_text
bodies = (
    st.binary(max_size=300)
    | payloads.map(lambda p: json.dumps(p).encode())
    | nested()
    | st.dictionaries(
        st.sampled_from(["specversion", "id", "source", "type", "time", "data", "data_base64", "danmakusender"]),
        json_values | st.sampled_from(["1.0", "c-1", "/s", events.PUBLISHED, events.REJECTED]),
    ).map(lambda e: json.dumps(e).encode())
)


def assert_answered_with_the_contract(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


@SETTINGS
@given(headers=st.dictionaries(header_names, header_values, max_size=8), body=bodies, with_token=st.booleans())
def test_any_request_to_events_is_answered_without_a_server_error(client, processor_token, headers, body, with_token):
    response = client.post("/events", headers={**headers, **(processor_token if with_token else {})}, data=body)
    assert_answered_with_the_contract(response)


@SETTINGS
@given(
    kind=st.sampled_from([events.PUBLISHED, events.REJECTED]),
    data=(payloads | json_values).map(lambda d: json.dumps(d).encode()) | nested(),
    sender=header_values,
)
def test_any_verdict_from_the_processor_is_shown_or_refused_with_a_4xx(client, processor_token, kind, data, sender):
    headers = {
        "ce-specversion": "1.0",
        "ce-type": kind,
        "ce-source": "/danmaku-processor",
        "ce-id": "c-1",
        "ce-danmakusender": sender,
        "content-type": "application/json",
        **processor_token,
    }
    response = client.post("/events", headers=headers, data=data)
    assert_answered_with_the_contract(response)
