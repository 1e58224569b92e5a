"""The one error shape every endpoint answers with: {"error": {"code", "message"}}."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from danmaku_events.comment import MAX_TEXT_LENGTH, InvalidComment, validate_room

# Codes the contract names; any other HTTP error gets its reason phrase in snake_case.
_CODES = {413: "payload_too_large", 415: "unsupported_media_type"}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


class ApiError(Exception):
    """A request this service refuses: HTTP status, stable code, message for a person.

    `retry_after` (whole seconds) is for refusals that pass with time: HTTP answers it as
    the Retry-After header, a Socket.IO ack as `error.retry_after`.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def to_error(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, self.message)

    def to_ack(self) -> dict[str, Any]:
        """The Socket.IO acknowledgement: {ok: false, error: {code, message[, retry_after]}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"ok": False, "error": error}


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Any, int, dict[str, str]]:
        return error.to_error(), error.status, error.headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Any, int]:
        status = error.code or 500
        if status == 413:
            message = (
                f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes; "
                f"send one comment (text of at most {MAX_TEXT_LENGTH} characters) per request"
            )
        else:
            message = error.description or error.name
        code = _CODES.get(status, error.name.lower().replace(" ", "_"))
        return error_body(code, message), status


def room_or_404(room: str) -> str:
    """A room named in a URL; one that cannot exist is a page that does not exist."""
    try:
        return validate_room(room)
    except InvalidComment as error:
        raise ApiError(404, error.code, f"no such room: {error.message}") from error
