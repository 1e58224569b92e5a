"""Properties of CloudEvent decoding: whatever a client sends, `from_http` answers with a
CloudEvent or InvalidEvent (a 400 for the service), never another exception (a 500,
which a dispatcher retries for minutes)."""

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from danmaku_events import events

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ATTRIBUTE_NAMES = ["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject"]
HEADER_NAMES = [
    *(f"ce-{name}" for name in ATTRIBUTE_NAMES),
    "ce-danmakusender",
    "ce-",
    "ce-Data",
    "ce-data",
    "CE-ID",
    "content-type",
    "Content-Type",
]
CONTENT_TYPES = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents+json; charset=utf-8",
    "application/cloudevents-batch+json",
    "text/json",
    "application/vnd.x+json",
    "text/plain",
    "application/octet-stream",
    "",
]
BINARY_JSON = {
    "ce-specversion": "1.0",
    "ce-id": "1",
    "ce-type": "t",
    "ce-source": "/s",
    "content-type": "application/json",
}
ATTRIBUTE_VALUES = ["1.0", "0.3", "", "c-1", "/s", events.SUBMITTED, "2024-05-01T12:00:00Z", "2024-13-01", "%ZZ"]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


@st.composite
def nested(draw):
    """JSON-ish text nested up to a few thousand levels, balanced or not."""
    depth = draw(st.integers(0, 3000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"data":[', "]}")]))
    middle = draw(st.sampled_from(["", "1", '"x"', "null"]))
    closed = draw(st.integers(0, depth))
    return (opening * depth + middle + closing * closed).encode()


def json_text(value):
    return json.dumps(value).encode()


envelopes = st.dictionaries(
    st.sampled_from([*ATTRIBUTE_NAMES, "data", "data_base64", "danmakusender", "Bad", ""]) | st.text(max_size=6),
    st.sampled_from(ATTRIBUTE_VALUES) | json_values,
    max_size=10,
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(json_text)
    | envelopes.map(json_text)
    | nested()
    | st.builds(
        lambda inner: b'{"specversion":"1.0","id":"1","type":"t","source":"/s","data":' + inner + b"}", nested()
    )
)
headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES) | st.text(max_size=12),
    st.sampled_from(ATTRIBUTE_VALUES + CONTENT_TYPES) | st.text(max_size=30),
    max_size=10,
)


@SETTINGS
@given(headers=headers, body=bodies)
def test_any_request_decodes_to_an_event_or_an_invalid_event(headers, body):
    try:
        event = events.from_http(headers, body)
    except events.InvalidEvent:
        return
    assert event.get_specversion() == "1.0"
    assert all(event.get_attributes()[name] for name in ("id", "source", "type"))


@SETTINGS
@given(envelope=envelopes)
def test_any_structured_event_decodes_or_is_an_invalid_event_and_so_do_its_contents(envelope):
    body = json_text({"specversion": "1.0", "id": "1", "type": "t", "source": "/s", **envelope})
    with contextlib.suppress(events.InvalidEvent):
        event = events.from_http({"Content-Type": "application/cloudevents+json"}, body)
        # What the services do with a decoded event next raises nothing else either.
        events.sender_of(event)
        events.comment_of(event)


@SETTINGS
@given(data=json_values.map(json_text) | nested())
def test_the_data_of_any_binary_event_is_a_rejection_or_an_invalid_event(data):
    with contextlib.suppress(events.InvalidEvent):
        events.rejection_of(events.from_http(BINARY_JSON, data))


@SETTINGS
@given(depth=st.integers(0, 3000))
def test_json_data_is_accepted_up_to_the_depth_limit_and_refused_beyond_it(depth):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-type": "t",
        "ce-source": "/s",
        "content-type": "application/json",
    }
    try:
        event = events.from_http(headers, b"[" * depth + b"]" * depth)
    except events.InvalidEvent as error:
        assert depth > 32
        assert "levels of arrays and objects are accepted" in str(error)
    else:
        assert depth <= 32
        assert event.get_data() == (json.loads(b"[" * depth + b"]" * depth) if depth else None)
