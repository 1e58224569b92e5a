"""The comment schema: what a client may send and what it becomes."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from danmaku_events.comment import (
    MAX_NICK_LENGTH,
    MAX_TEXT_LENGTH,
    MODES,
    SIZES,
    Comment,
    InvalidComment,
    comment_from_dict,
    graphemes,
    normalize_text,
    parse_comment,
    validate_text,
)


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


# The text policy, by grapheme: what a reader sees as one character counts once.

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧, 5 code points
EMOJI = {
    "family (ZWJ sequence)": FAMILY,
    "rainbow flag (VS16 + ZWJ)": "\U0001f3f3\ufe0f\u200d\U0001f308",  # 🏳️‍🌈
    "Scotland (tag sequence)": "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # 🏴󠁧󠁢󠁳󠁣󠁴󠁿
    "thumbs up, skin tone": "\U0001f44d\U0001f3fd",  # 👍🏽
    "keycap one": "1\ufe0f\u20e3",  # 1️⃣
    "flag of Japan (regional indicators)": "\U0001f1ef\U0001f1f5",  # 🇯🇵
    "red heart (VS16)": "\u2764\ufe0f",  # ❤️
    "kiss, two skin tones (10 code points)": (
        "\U0001f469\U0001f3fb\u200d\u2764\ufe0f\u200d\U0001f48b\u200d\U0001f468\U0001f3fc"
    ),
    "shaking face (Unicode 15)": "\U0001fae8",  # 🫨
}
FILLERS = {
    "U+3164": "\u3164",  # HANGUL FILLER
    "U+2800": "\u2800",  # BRAILLE PATTERN BLANK
    "U+115F": "\u115f",  # HANGUL CHOSEONG FILLER
    "U+1160": "\u1160",  # HANGUL JUNGSEONG FILLER
    "U+FFA0": "\uffa0",  # HALFWIDTH HANGUL FILLER
    "U+180E": "\u180e",  # MONGOLIAN VOWEL SEPARATOR
    "U+2060": "\u2060",  # WORD JOINER
    "U+200B": "\u200b",  # ZERO WIDTH SPACE
    "U+FEFF": "\ufeff",  # BYTE ORDER MARK
    "U+034F": "\u034f",  # COMBINING GRAPHEME JOINER
    "U+17B4": "\u17b4",  # KHMER VOWEL INHERENT AQ
    "U+00AD": "\u00ad",  # SOFT HYPHEN
}
BIDI_CONTROLS = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
]


def refusal(text):
    with pytest.raises(InvalidComment) as raised:
        validate_text(text)
    assert raised.value.code == "invalid_text"
    return raised.value.message


def test_101_letters_are_refused():
    assert "got 101" in refusal("x" * 101)


def test_100_family_emoji_are_100_characters_and_accepted():
    assert validate_text(FAMILY * 100) == FAMILY * 100


def test_101_family_emoji_are_refused():
    assert "1-100 characters after trimming; got 101" in refusal(FAMILY * 101)


@pytest.mark.parametrize("emoji", EMOJI.values(), ids=EMOJI.keys())
def test_an_emoji_sequence_is_accepted_as_sent(emoji):
    assert validate_text(f"nice {emoji}") == f"nice {emoji}"


@pytest.mark.parametrize(
    "text", ["Tiếng Việt có dấu", "राष्ट्रीय ध्वज", "ที่นี่", "می\u200cخواهم", "ශ්\u200dරී ලංකා", "日本語と中文"]
)
def test_writing_systems_that_need_marks_or_joiners_are_accepted(text):
    assert validate_text(text) == text


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_an_invisible_filler_is_refused_naming_it(filler):
    message = refusal(f"hi{filler}")
    assert f"U+{ord(filler):04X} at position 2" in message
    assert "remove it" in message


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_text_of_fillers_alone_is_refused(filler):
    refusal(filler * 3)


@pytest.mark.parametrize("blank", ["   ", "\u3000", "\u3000 \u00a0\t\n", "\u2003\u2028"])
def test_text_of_whitespace_alone_is_empty(blank):
    assert "got 0" in refusal(blank)


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=[f"U+{ord(c):04X}" for c in BIDI_CONTROLS])
def test_a_bidi_control_is_refused(control):
    message = refusal(f"abc{control}def")
    assert "bidirectional control" in message
    assert f"U+{ord(control):04X} at position 3" in message


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("a\u200db", 1),  # between letters
        ("buy\u200d", 3),  # trailing
        ("\u200d\U0001f468", 0),  # leading
        ("\U0001f468\u200d", 1),  # after an emoji, before nothing
        ("\U0001f468\u200da", 1),  # between an emoji and a letter
    ],
)
def test_a_zero_width_joiner_outside_an_emoji_sequence_is_refused(text, position):
    assert f"zero-width joiner (U+200D) outside an emoji sequence; found U+200D at position {position}" in refusal(text)


def test_a_zero_width_non_joiner_between_latin_letters_is_refused():
    assert "U+200C at position 1" in refusal("b\u200cuy")


@pytest.mark.parametrize(
    "text",
    [
        "a\U000e0067\U000e0062",  # tags after a letter
        "\U0001f3f4\U000e0047\U000e0042\U000e007f",  # upper-case tag letters
        "\U0001f3f4\U000e0067\U000e0062",  # no CANCEL TAG
        "\U000e007f",  # CANCEL TAG alone
    ],
)
def test_tag_characters_outside_a_flag_sequence_are_refused(text):
    assert "tag characters outside a flag emoji" in refusal(text)


def test_a_variation_selector_after_nothing_visible_is_refused():
    assert "U+FE0F at position 3" in refusal("hi \ufe0f")


def test_four_combining_marks_on_a_letter_are_accepted():
    text = "x\u0300\u0301\u0302\u0303"
    assert validate_text(text) == text


def test_five_combining_marks_on_a_letter_are_refused_naming_its_position():
    message = refusal("ok x\u0300\u0301\u0302\u0303\u0304")
    assert "5 combining marks on one character at position 3" in message
    assert "U+0078" in message
    assert "at most 4" in message


def test_a_stack_of_100_marks_is_refused():
    assert "100 combining marks" in refusal("Z" + "\u0336" * 100)


def test_a_combining_mark_with_no_letter_is_refused():
    assert "no character to carry it at position 0" in refusal("\u0301abc")


def test_emoji_chained_past_the_longest_real_sequence_are_refused():
    chain = "\u200d".join(["\U0001f468"] * 6)  # 11 code points, drawn 6 emoji wide
    assert "made of 11 code points" in refusal(chain)


def test_input_longer_than_2000_code_points_is_refused_before_any_other_work():
    message = refusal(" " * 1995 + "hello\u202e")
    assert "2001 code points long as sent; at most 2000" in message


def test_positions_count_code_points_as_sent():
    assert "U+202E at position 4" in refusal("  \u00e9\u00e9\u202e")


def test_the_nick_follows_the_same_policy_with_24_characters():
    family_nick = FAMILY * 24
    assert parse({"text": "hi", "nick": family_nick}).nick == family_nick
    assert parse({"text": "hi", "nick": "n" * 24}).nick == "n" * 24
    with pytest.raises(InvalidComment, match="at most 24 characters after trimming; got 25"):
        parse({"text": "hi", "nick": FAMILY * 25})
    with pytest.raises(InvalidComment, match="U\\+3164"):
        parse({"text": "hi", "nick": "\u3164"})


def test_an_empty_nick_is_allowed():
    assert parse({"text": "hi", "nick": "  "}).nick == ""


# Properties: whatever arrives, the answer is a valid comment or an InvalidComment.

FIELD_CODES = {
    f"invalid_{field}" for field in ("body", "text", "color", "mode", "size", "nick", "room", "id", "ts", "data")
}
# Pieces the text policy treats specially, so examples hit its edges often.
PIECES = [
    *EMOJI.values(),
    *FILLERS.values(),
    *BIDI_CONTROLS,
    "\u200d", "\u200c", "\ufe0f", "\ufe0e", "\U000e0067", "\U000e007f", "\U0001f3f4", "\U0001f3fd", "\u20e3",
    "\u0301", "\u0300", "\u0336", "\u094d", "\u0dca", "\u0915", "\u0634", "e", "Z", "1", " ", "\u3000", "\t", "\n",
    "\x00", "\x07", "\ud800", "\udfff", "\ue000", "\U0010fffd", "\u0378", "\U0001f468", "\u2764",
]  # fmt: skip
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Pieces of text a person writes: emoji, letters with their accents, spaces.
WORDS = [*EMOJI.values(), "hello", "Tiếng", "ष्ट्री", "ที่", "می\u200cخواهم", "弹幕", "x\u0301", " ", "  \n", "!"]
texts = st.one_of(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=60).map("".join),
    st.lists(st.sampled_from(PIECES + WORDS), max_size=40).map("".join),
    st.text(st.characters(exclude_categories=()), max_size=120),
)
comment_fields = st.fixed_dictionaries(
    {"text": texts},
    optional={
        "nick": texts,
        "color": st.sampled_from(["#FFFFFF", "#ff8800", "red", "#12345"]),
        "mode": st.sampled_from([*MODES, "spiral"]),
        "size": st.sampled_from([*SIZES, "huge"]),
        "room": st.sampled_from(["lobby", "music", "Music", ""]),
    },
)
# Anything at all in any field, or fields nobody knows.
odd_fields = st.dictionaries(
    st.sampled_from(["text", "nick", "color", "mode", "size", "room", "colour", ""]), json_values, max_size=7
)
examples = settings(max_examples=200, deadline=None)


def check_valid(comment):
    """What every accepted comment satisfies."""
    assert isinstance(comment, Comment)
    assert unicodedata.normalize("NFC", comment.text) == comment.text
    assert 1 <= len(graphemes(comment.text)) <= MAX_TEXT_LENGTH
    assert comment.text == comment.text.strip()
    assert len(graphemes(comment.nick)) <= MAX_NICK_LENGTH
    assert comment_from_dict(comment.to_dict()) == comment  # validating again changes nothing


def check_refusal(error):
    assert error.code in FIELD_CODES
    assert error.message and isinstance(error.message, str)


@examples
@given(st.one_of(comment_fields, odd_fields, json_values))
def test_any_client_input_is_a_valid_comment_or_an_invalid_comment(fields):
    try:
        comment = parse(fields)
    except InvalidComment as error:
        check_refusal(error)
    else:
        check_valid(comment)


@examples
@given(
    st.one_of(
        comment_fields.map(lambda fields: {"id": "c1", "ts": 5, **fields}),
        st.fixed_dictionaries({"id": json_values, "ts": json_values}).flatmap(
            lambda ids: odd_fields.map(lambda fields: {**fields, **ids})
        ),
        json_values,
    )
)
def test_any_data_from_another_service_is_a_valid_comment_or_an_invalid_comment(data):
    try:
        comment = comment_from_dict(data)
    except InvalidComment as error:
        check_refusal(error)
    else:
        check_valid(comment)


@examples
@given(texts | json_values)
def test_validating_text_twice_gives_the_same_text(value):
    try:
        text = validate_text(value)
    except InvalidComment as error:
        assert error.code == "invalid_text"
    else:
        assert validate_text(text) == text


def test_a_timestamp_a_browser_cannot_read_exactly_is_refused():
    with pytest.raises(InvalidComment) as raised:
        comment_from_dict({"id": "a", "ts": 2**53, "text": "hi"})
    assert raised.value.code == "invalid_ts"


def test_an_integer_too_long_to_print_is_described_not_echoed():
    with pytest.raises(InvalidComment) as raised:
        parse({"text": "hi", "mode": 10**5000})
    assert raised.value.message == "mode must be one of scroll, top, bottom; got a number"
