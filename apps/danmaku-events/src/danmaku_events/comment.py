"""The comment schema: field rules, normalization and validation.

Pure logic, no I/O: the web front end validates what a browser sends with it, and the
processor validates again what it reads from Kafka, so both enforce one set of rules.

The text policy (text and nick): lengths count graphemes, what a reader sees as one
character (an emoji sequence or a letter with its accents counts once), with the
`regex` module's `\\X`. Refused: control, format, surrogate, private-use and unassigned
code points, bidi controls, invisible fillers (Unicode's Default_Ignorable_Code_Point
plus U+2800 BRAILLE PATTERN BLANK), more than MAX_MARKS_PER_GRAPHEME combining marks or
MAX_CODE_POINTS_PER_GRAPHEME code points on one grapheme. Format characters are allowed
only where a writing system needs them: ZWJ inside an emoji ZWJ sequence, tag characters
inside a flag tag sequence, variation selectors after a visible character, and ZWJ/ZWNJ
after a virama (Indic scripts) or ZWNJ between Arabic-script letters (Persian).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import regex

MAX_TEXT_LENGTH = 100  # graphemes, after trimming
MAX_NICK_LENGTH = 24  # graphemes, after trimming
# Read at most this many code points of a text field before any grapheme work, so the
# validator stays cheap whatever it is sent. A full comment of the longest emoji
# (10 code points each) plus spacing fits.
MAX_INPUT_LENGTH = 2000
# Vietnamese, Hindi, Thai and Tibetan need at most 3-4 marks on a letter; a stack of
# dozens ("Zalgo" text) draws hundreds of pixels above and below the line.
MAX_MARKS_PER_GRAPHEME = 4
# The longest emoji, a kiss with two skin tones (👩🏻‍❤️‍💋‍👨🏼), has 10 code points; longer
# graphemes are emoji chained with joiners or jamo runs that draw many characters wide.
MAX_CODE_POINTS_PER_GRAPHEME = 10
DEFAULT_ROOM = "lobby"
DEFAULT_COLOR = "#FFFFFF"
MODES = ("scroll", "top", "bottom")
SIZES = ("small", "normal", "large")
DEFAULT_MODE = "scroll"
DEFAULT_SIZE = "normal"

ROOM_PATTERN = re.compile(r"[a-z0-9-]{1,32}")
COLOR_PATTERN = re.compile(r"#[0-9A-Fa-f]{6}")
_WHITESPACE_RUN = re.compile(r"\s+")
_FIELDS = ("text", "color", "mode", "size", "nick", "room")
_MAX_SAFE_INTEGER = 2**53  # the largest integer a browser's JSON.parse reads exactly

# The `regex` module has current Unicode data (the standard library's may be older, so
# new emoji would look unassigned to it).
_GRAPHEME = regex.compile(r"\X")
_SUSPECT = regex.compile(r"[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}\u2800]")
_BIDI_CONTROL = regex.compile(r"\p{Bidi_Control}")
_PICTOGRAPHIC = regex.compile(r"\p{Extended_Pictographic}")
_MARK = regex.compile(r"[\p{Mn}\p{Me}]")
_ANY_MARK = regex.compile(r"\p{M}")
_EMOJI_EXTEND = regex.compile(r"[\p{Emoji_Modifier}\p{Mn}\p{Me}]")
_VIRAMA = regex.compile(r"\p{Canonical_Combining_Class=Virama}")
_LETTER = regex.compile(r"\p{L}")
_ARABIC_LETTER = regex.compile(r"[\p{Script=Arabic}&&\p{L}]", regex.V1)
_VARIATION_SELECTOR = regex.compile(r"[\uFE00-\uFE0F\U000E0100-\U000E01EF\u180B-\u180D\u180F]")
_TAG = regex.compile(r"[\U000E0020-\U000E007F]")
# UTS #51 emoji tag sequence as used for subdivision flags: 🏴, a lowercase/digit tag
# spec, CANCEL TAG.
_TAG_FLAG = regex.compile(r"\U0001F3F4[\U000E0030-\U000E0039\U000E0061-\U000E007A]+\U000E007F")
_ZWJ, _ZWNJ = "\u200d", "\u200c"
_WHITESPACE_CONTROLS = frozenset("\t\n\r")  # collapsed to one space like any whitespace
_CATEGORY_NAMES = (
    (regex.compile(r"\p{Cc}"), "control characters"),
    (regex.compile(r"\p{Cf}"), "format characters"),
    (regex.compile(r"\p{Cs}"), "surrogates (half of a UTF-16 pair)"),
    (regex.compile(r"\p{Co}"), "private-use characters (they look different on every device)"),
    (regex.compile(r"\p{Cn}"), "unassigned code points"),
)


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


def graphemes(text: str) -> list[str]:
    """The user-perceived characters of `text` (Unicode extended grapheme clusters)."""
    return _GRAPHEME.findall(text)


def _show(value: Any, limit: int = 40) -> str:
    """repr of a value a client sent, cut short: error messages echo it, not all of it."""
    if isinstance(value, list | dict):
        return f"{json_type_name(value)} of {len(value)} item{'' if len(value) == 1 else 's'}"
    try:
        shown = repr(value)
    except ValueError:  # an int too long to print (Python limits int-to-text conversion)
        return json_type_name(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def json_type_name(value: Any) -> str:
    """The JSON name of a value's type, as a client who sent JSON would say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    return type(value).__name__


def validate_room(room: Any) -> str:
    if not isinstance(room, str) or not ROOM_PATTERN.fullmatch(room):
        raise InvalidComment(
            "room",
            f"room must match [a-z0-9-]{{1,32}} (lowercase letters, digits, '-'); got {_show(room)}",
        )
    return room


def _require_string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidComment(field, f"{field} must be a string; got {json_type_name(value)}")
    if len(value) > MAX_INPUT_LENGTH:
        raise InvalidComment(
            field,
            f"{field} is {len(value)} code points long as sent; at most {MAX_INPUT_LENGTH} are read "
            f"(the limit after trimming is {MAX_TEXT_LENGTH if field == 'text' else MAX_NICK_LENGTH} "
            "characters); shorten it",
        )
    return value


def _base_before(text: str, position: int, start: int) -> str:
    """The character a joiner at `position` follows, skipping modifiers and marks on it."""
    index = position - 1
    while index > start and _EMOJI_EXTEND.match(text[index]):
        index -= 1
    return text[index] if index >= start else ""


def _follows_virama(text: str, position: int) -> bool:
    # Indic scripts write ZWJ/ZWNJ after a virama to choose a half form or stop a conjunct.
    return position > 0 and bool(_VIRAMA.match(text[position - 1])) and _is_letter_at(text, position + 1)


def _is_letter_at(text: str, position: int, pattern: regex.Pattern = _LETTER) -> bool:
    return position < len(text) and bool(pattern.match(text[position]))


def _refusal(text: str, position: int, start: int, end: int) -> str | None:
    """Why the suspect code point at `position` (in the grapheme text[start:end]) is refused;
    None when it is there for a writing system or an emoji."""
    char = text[position]
    if char in _WHITESPACE_CONTROLS:
        return None
    if _BIDI_CONTROL.match(char):
        return "bidirectional control characters (they reorder the text around them)"
    if char == _ZWJ:
        in_emoji = _PICTOGRAPHIC.match(_base_before(text, position, start) or " ") and (
            position + 1 < end and _PICTOGRAPHIC.match(text[position + 1])
        )
        if in_emoji or _follows_virama(text, position):
            return None
        return "a zero-width joiner (U+200D) outside an emoji sequence"
    if char == _ZWNJ:
        if _follows_virama(text, position) or (
            _ARABIC_LETTER.match(_base_before(text, position, start) or " ")
            and _is_letter_at(text, position + 1, _ARABIC_LETTER)
        ):
            return None
        return "a zero-width non-joiner (U+200C) outside Arabic-script or Indic words"
    if _TAG.match(char):
        if _TAG_FLAG.fullmatch(text, start, end):
            return None
        return "tag characters outside a flag emoji (🏴 + tag letters + CANCEL TAG)"
    if _VARIATION_SELECTOR.match(char):
        if position > start and not text[start].isspace() and not _ANY_MARK.match(text[start]):
            return None
        return "a variation selector that follows no visible character"
    for pattern, name in _CATEGORY_NAMES:
        if pattern.match(char):
            return name
    return "invisible filler characters (they draw nothing but count as text)"


def _reject_hidden_characters(field: str, value: str) -> None:
    """Refuse code points that hide, reorder or fake text; positions count code points as sent."""
    suspects = [match.start() for match in _SUSPECT.finditer(value)]
    if not suspects:
        return
    spans = [match.span() for match in _GRAPHEME.finditer(value)]
    span = 0
    for position in suspects:
        while spans[span][1] <= position:
            span += 1
        reason = _refusal(value, position, *spans[span])
        if reason:
            raise InvalidComment(
                field,
                f"{field} must not contain {reason}; found U+{ord(value[position]):04X} at position {position}; "
                "remove it",
            )


def _check_graphemes(field: str, clusters: list[str]) -> None:
    for index, cluster in enumerate(clusters):
        where = f"at position {index} (counting characters after trimming; it starts with U+{ord(cluster[0]):04X})"
        if _ANY_MARK.match(cluster[0]):
            raise InvalidComment(
                field, f"{field} has a combining mark with no character to carry it {where}; remove it"
            )
        marks = len(_MARK.findall(cluster))
        if marks > MAX_MARKS_PER_GRAPHEME:
            raise InvalidComment(
                field,
                f"{field} has {marks} combining marks on one character {where}; at most "
                f"{MAX_MARKS_PER_GRAPHEME} are allowed (enough for any language's accents); remove the extra marks",
            )
        if len(cluster) > MAX_CODE_POINTS_PER_GRAPHEME:
            raise InvalidComment(
                field,
                f"{field} has a character made of {len(cluster)} code points {where}; at most "
                f"{MAX_CODE_POINTS_PER_GRAPHEME} are allowed (the longest emoji has 10); split it up",
            )


def _validate_plain_text(field: str, value: Any, maximum: int, minimum: int) -> str:
    text = _require_string(field, value)
    _reject_hidden_characters(field, text)
    text = normalize_text(text)
    clusters = graphemes(text)
    if not minimum <= len(clusters) <= maximum:
        bounds = f"{minimum}-{maximum}" if minimum else f"at most {maximum}"
        raise InvalidComment(
            field,
            f"{field} must be {bounds} characters after trimming; got {len(clusters)} "
            "(an emoji sequence or a letter with its accents counts as one)",
        )
    _check_graphemes(field, clusters)
    return text


def validate_text(value: Any) -> str:
    """The comment text, normalized (NFC, whitespace collapsed, trimmed): 1-100 graphemes."""
    return _validate_plain_text("text", value, MAX_TEXT_LENGTH, 1)


def _validate_choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidComment(field, f"{field} must be one of {', '.join(choices)}; got {_show(value)}")
    return value


def _validate_color(value: Any) -> str:
    if not isinstance(value, str) or not COLOR_PATTERN.fullmatch(value):
        raise InvalidComment("color", f"color must be #RRGGBB (hex digits); got {_show(value)}")
    return value.upper()


def _validate_nick(value: Any) -> str:
    return _validate_plain_text("nick", value, MAX_NICK_LENGTH, 0)


def parse_comment(fields: Any, *, id: str, ts: int, room: str | None = None) -> Comment:
    """Validate and normalize a comment as a client sent it.

    `room` (from the URL) wins over a room in `fields`; a missing field takes its
    default; an unknown field is an error, so a typo ("colour") is not silently dropped.
    Raises InvalidComment naming the first field that is wrong.
    """
    if not isinstance(fields, Mapping):
        raise InvalidComment("body", f"a comment must be a JSON object; got {json_type_name(fields)}")
    unknown = [key for key in fields if key not in _FIELDS]
    if unknown:
        raise InvalidComment("body", f"unknown field {_show(unknown[0])}; known fields are {', '.join(_FIELDS)}")
    if "text" not in fields:
        raise InvalidComment("text", "text is required")
    body_room = fields.get("room")
    if room is not None and body_room is not None and body_room != room:
        raise InvalidComment("room", f"room in the body ({_show(body_room)}) differs from the URL ({room!r})")
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
        raise InvalidComment("data", f"comment data must be a JSON object; got {json_type_name(data)}")
    comment_id = data.get("id")
    if not isinstance(comment_id, str) or not comment_id:
        raise InvalidComment("id", f"id must be a non-empty string; got {_show(comment_id)}")
    ts = data.get("ts", 0)
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < _MAX_SAFE_INTEGER:
        raise InvalidComment("ts", f"ts must be milliseconds since the epoch; got {_show(ts)}")
    fields = {key: value for key, value in data.items() if key not in ("id", "ts")}
    return parse_comment(fields, id=comment_id, ts=ts)
