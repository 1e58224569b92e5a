"""The comment schema: what a client may send and what it becomes."""

import pytest

from danmaku_events.comment import InvalidComment, comment_from_dict, normalize_text, parse_comment


def parse(fields, room=None):
    return parse_comment(fields, id="c1", ts=1_700_000_000_000, room=room)


def test_a_minimal_comment_takes_the_defaults():
    comment = parse({"text": "hello"})
    assert comment.to_dict() == {
        "id": "c1",
        "room": "lobby",
        "text": "hello",
        "color": "#FFFFFF",
        "mode": "scroll",
        "size": "normal",
        "nick": "",
        "ts": 1_700_000_000_000,
    }


def test_text_is_nfc_normalized_whitespace_collapsed_and_trimmed():
    decomposed = "cafe\u0301"  # e + combining acute accent
    assert parse({"text": f"  {decomposed}\t\n  ok   then "}).text == "caf\u00e9 ok then"


def test_normalize_text_keeps_inner_single_spaces():
    assert normalize_text("a b") == "a b"


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"text": "   "}, "invalid_text", "got 0"),
        ({"text": "x" * 101}, "invalid_text", "got 101"),
        ({"text": 42}, "invalid_text", "must be a string"),
        ({"text": "bell\x07"}, "invalid_text", "U+0007 at position 4"),
        ({"text": "rtl\u202eoverride"}, "invalid_text", "U+202E"),
        ({"text": "hi", "color": "red"}, "invalid_color", "'red'"),
        ({"text": "hi", "color": "#12345"}, "invalid_color", "#RRGGBB"),
        ({"text": "hi", "mode": "spiral"}, "invalid_mode", "scroll, top, bottom"),
        ({"text": "hi", "size": "huge"}, "invalid_size", "small, normal, large"),
        ({"text": "hi", "nick": "n" * 25}, "invalid_nick", "at most 24"),
        ({"text": "hi", "room": "Lobby"}, "invalid_room", "'Lobby'"),
        ({"text": "hi", "room": "r" * 33}, "invalid_room", "[a-z0-9-]{1,32}"),
        ({"text": "hi", "colour": "#000000"}, "invalid_body", "unknown field 'colour'"),
        ({"color": "#000000"}, "invalid_text", "text is required"),
        (["text"], "invalid_body", "JSON object"),
    ],
)
def test_a_bad_field_is_named_with_the_reason(fields, code, fragment):
    with pytest.raises(InvalidComment) as raised:
        parse(fields)
    assert raised.value.code == code
    assert fragment in raised.value.message
    assert raised.value.to_error() == {"error": {"code": code, "message": raised.value.message}}


def test_exactly_100_characters_is_accepted():
    assert len(parse({"text": "x" * 100}).text) == 100


def test_the_room_from_the_url_is_used_and_must_agree_with_the_body():
    assert parse({"text": "hi"}, room="music").room == "music"
    with pytest.raises(InvalidComment, match="differs from the URL"):
        parse({"text": "hi", "room": "lobby"}, room="music")


def test_color_is_stored_in_upper_case():
    assert parse({"text": "hi", "color": "#ff00aa"}).color == "#FF00AA"


def test_a_comment_from_another_service_keeps_its_id_and_timestamp():
    comment = comment_from_dict({"id": "abc", "ts": 5, "room": "r1", "text": " hi "})
    assert (comment.id, comment.ts, comment.room, comment.text) == ("abc", 5, "r1", "hi")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"ts": 5, "text": "hi"}, "invalid_id"),
        ({"id": "a", "ts": -1, "text": "hi"}, "invalid_ts"),
        ({"id": "a", "ts": True, "text": "hi"}, "invalid_ts"),
        ("text", "invalid_data"),
    ],
)
def test_a_comment_from_another_service_is_validated(data, code):
    with pytest.raises(InvalidComment) as raised:
        comment_from_dict(data)
    assert raised.value.code == code
