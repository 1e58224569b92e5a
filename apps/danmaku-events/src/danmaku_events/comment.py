"""The comment schema: field rules, normalization and validation.

Pure logic, no I/O: the web front end validates what a browser sends with it, and the
processor validates again what it reads from Kafka, so both enforce one set of rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX_TEXT_LENGTH = 100
MAX_NICK_LENGTH = 24
DEFAULT_ROOM = "lobby"
DEFAULT_COLOR = "#FFFFFF"
MODES = ("scroll", "top", "bottom")
SIZES = ("small", "normal", "large")
DEFAULT_MODE = "scroll"
DEFAULT_SIZE = "normal"

ROOM_PATTERN = re.compile(r"[a-z0-9-]{1,32}")
COLOR_PATTERN = re.compile(r"#[0-9A-Fa-f]{6}")
_WHITESPACE_RUN = re.compile(r"\s+")
# Categories Cc (control), Cf (format, e.g. bidi overrides), Cs, Co, Cn.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ALLOWED_WHITESPACE_CONTROLS = frozenset("\t\n\r")
_FIELDS = ("text", "color", "mode", "size", "nick", "room")


class InvalidComment(ValueError):
    """A comment field broke a rule. `code` names the field, `message` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = f"invalid_{field}"
        self.message = message

    def to_error(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class Comment:
    """One accepted comment, as every service and every browser sees it."""

    id: str
    room: str
    text: str
    color: str = DEFAULT_COLOR
    mode: str = DEFAULT_MODE
    size: str = DEFAULT_SIZE
    nick: str = ""
    ts: int = 0  # milliseconds since the Unix epoch, set when danmaku-web accepted it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_text(self, text: str) -> Comment:
        return Comment(**{**asdict(self), "text": text})


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, trimmed."""
    return _WHITESPACE_RUN.sub(" ", unicodedata.normalize("NFC", text)).strip()


def validate_room(room: Any) -> str:
    if not isinstance(room, str) or not ROOM_PATTERN.fullmatch(room):
        raise InvalidComment(
            "room",
            f"room must match [a-z0-9-]{{1,32}} (lowercase letters, digits, '-'); got {room!r}",
        )
    return room


def _require_string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidComment(field, f"{field} must be a string; got {type(value).__name__}")
    return value


def _reject_control_characters(field: str, value: str) -> None:
    for position, char in enumerate(value):
        if char in _ALLOWED_WHITESPACE_CONTROLS:
            continue
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidComment(
                field,
                f"{field} must not contain control or format characters; "
                f"found U+{ord(char):04X} at position {position}",
            )


def validate_text(value: Any) -> str:
    text = _require_string("text", value)
    _reject_control_characters("text", text)
    text = normalize_text(text)
    if not 1 <= len(text) <= MAX_TEXT_LENGTH:
        raise InvalidComment(
            "text",
            f"text must be 1-{MAX_TEXT_LENGTH} characters after trimming; got {len(text)}",
        )
    return text


def _validate_choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidComment(field, f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _validate_color(value: Any) -> str:
    if not isinstance(value, str) or not COLOR_PATTERN.fullmatch(value):
        raise InvalidComment("color", f"color must be #RRGGBB (hex digits); got {value!r}")
    return value.upper()


def _validate_nick(value: Any) -> str:
    nick = _require_string("nick", value)
    _reject_control_characters("nick", nick)
    nick = normalize_text(nick)
    if len(nick) > MAX_NICK_LENGTH:
        raise InvalidComment("nick", f"nick must be at most {MAX_NICK_LENGTH} characters; got {len(nick)}")
    return nick


def parse_comment(fields: Any, *, id: str, ts: int, room: str | None = None) -> Comment:
    """Validate and normalize a comment as a client sent it.

    `room` (from the URL) wins over a room in `fields`; a missing field takes its
    default; an unknown field is an error, so a typo ("colour") is not silently dropped.
    Raises InvalidComment naming the first field that is wrong.
    """
    if not isinstance(fields, Mapping):
        raise InvalidComment("body", f"a comment must be a JSON object; got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise InvalidComment("body", f"unknown field {unknown[0]!r}; known fields are {', '.join(_FIELDS)}")
    if "text" not in fields:
        raise InvalidComment("text", "text is required")
    body_room = fields.get("room")
    if room is not None and body_room is not None and body_room != room:
        raise InvalidComment("room", f"room in the body ({body_room!r}) differs from the URL ({room!r})")
    return Comment(
        id=id,
        ts=ts,
        room=validate_room(room if room is not None else fields.get("room", DEFAULT_ROOM)),
        text=validate_text(fields["text"]),
        color=_validate_color(fields.get("color", DEFAULT_COLOR)),
        mode=_validate_choice("mode", fields.get("mode", DEFAULT_MODE), MODES),
        size=_validate_choice("size", fields.get("size", DEFAULT_SIZE), SIZES),
        nick=_validate_nick(fields.get("nick", "")),
    )


def comment_from_dict(data: Any) -> Comment:
    """Rebuild a comment another service produced (it carries its id and ts); validates it."""
    if not isinstance(data, Mapping):
        raise InvalidComment("data", f"comment data must be a JSON object; got {type(data).__name__}")
    comment_id = data.get("id")
    if not isinstance(comment_id, str) or not comment_id:
        raise InvalidComment("id", f"id must be a non-empty string; got {comment_id!r}")
    ts = data.get("ts", 0)
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise InvalidComment("ts", f"ts must be milliseconds since the epoch; got {ts!r}")
    fields = {key: value for key, value in data.items() if key not in ("id", "ts")}
    return parse_comment(fields, id=comment_id, ts=ts)
