"""The HTTP routes: CloudEvents in at `POST /`, health probes, JSON error bodies."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from danmaku_events import events
from danmaku_processor.processing import process
from danmaku_processor.sink import SinkError

# Keys in app.extensions, filled by create_app.
WORDLIST = "danmaku_processor.wordlist"
SINK = "danmaku_processor.sink"

bp = Blueprint("processor", __name__)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


@bp.post("/")
def receive_event():
    # A 4xx says the event can never be handled, so the dispatcher dead-letters it at once;
    # a 5xx only that trying again later may help (the sink failed), and holds the event's
    # partition while it is retried. Whatever a client sends, from_http and process answer
    # with an event or InvalidEvent (tests/test_properties.py).
    try:
        event = events.from_http(request.headers, request.get_data())
        result = process(event, current_app.extensions[WORDLIST])
    except events.InvalidEvent as error:
        return error_body("invalid_event", str(error)), 400
    sink = current_app.extensions[SINK]
    if sink is None:
        return error_body(
            "sink_not_configured",
            "K_SINK is not set, so results have nowhere to go; set it to the events sink's URL",
        ), 503
    try:
        sink.send(result)
    except SinkError as error:
        current_app.logger.warning("%s", error)
        # A 5xx makes the dispatcher retry the event later: at-least-once, nothing lost.
        return error_body("sink_unavailable", str(error)), 502
    return {"id": result.get_id(), "type": result.get_type()}


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    return {"status": "ready"}


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    return error_body(error.name.lower().replace(" ", "_"), error.description or error.name), error.code
