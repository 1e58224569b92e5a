"""The comment contract at its edges: every limit at exactly the limit and one past it,
joiners one character away from where a writing system needs them, and the exact
messages a client gets back."""

import pytest

from danmaku_events.comment import (
    MAX_CODE_POINTS_PER_GRAPHEME,
    MAX_INPUT_LENGTH,
    MAX_MARKS_PER_GRAPHEME,
    MAX_NICK_LENGTH,
    MAX_TEXT_LENGTH,
    Comment,
    InvalidComment,
    comment_from_dict,
    json_type_name,
    parse_comment,
    validate_text,
)

TS = 1_700_000_000_000
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # 🏴󠁧󠁢󠁳󠁣󠁴󠁿
MAN, WOMAN = "\U0001f468", "\U0001f469"
ZWJ, ZWNJ, VIRAMA, KA = "\u200d", "\u200c", "\u094d", "\u0915"  # क्
MEEM, YEH, BEH = "\u0645", "\u06cc", "\u0628"  # Persian letters


def parse(fields, room=None):
    return parse_comment(fields, id="c1", ts=TS, room=room)


def refused(fields=None, room=None, *, data=None):
    with pytest.raises(InvalidComment) as raised:
        if data is not None:
            comment_from_dict(data)
        else:
            parse(fields, room=room)
    return raised.value


def text_refusal(text):
    return refused({"text": text}).message


# --- Lengths: exactly at the limit, and one past it --------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"), [("text", MAX_TEXT_LENGTH), ("nick", MAX_NICK_LENGTH)], ids=["text 100", "nick 24"]
)
def test_given_a_field_of_exactly_its_limit_in_letters_when_parsed_then_it_is_kept_whole(field, limit):
    fields = {"text": "hi", field: "w" * limit}
    assert getattr(parse(fields), field) == "w" * limit


@pytest.mark.parametrize(
    ("field", "limit", "bounds"),
    [("text", MAX_TEXT_LENGTH, "1-100"), ("nick", MAX_NICK_LENGTH, "at most 24")],
    ids=["text 101", "nick 25"],
)
def test_given_a_field_one_letter_past_its_limit_when_parsed_then_the_message_gives_limit_and_count(
    field, limit, bounds
):
    error = refused({"text": "hi", field: "w" * (limit + 1)})
    assert error.code == f"invalid_{field}"
    assert error.message == (
        f"{field} must be {bounds} characters after trimming; got {limit + 1} "
        "(an emoji sequence or a letter with its accents counts as one)"
    )


def test_given_text_of_exactly_2000_code_points_as_sent_when_parsed_then_it_is_read_and_trimmed():
    sent = " " * (MAX_INPUT_LENGTH - MAX_TEXT_LENGTH) + "w" * MAX_TEXT_LENGTH
    assert len(sent) == 2000
    assert parse({"text": sent}).text == "w" * 100


@pytest.mark.parametrize(("field", "limit"), [("text", 100), ("nick", 24)])
def test_given_a_field_of_2001_code_points_as_sent_when_parsed_then_it_is_refused_naming_its_own_limit(field, limit):
    error = refused({"text": "hi", field: " " * 2000 + "w"})
    assert error.message == (
        f"{field} is 2001 code points long as sent; at most 2000 are read "
        f"(the limit after trimming is {limit} characters); shorten it"
    )


def test_given_exactly_the_most_combining_marks_on_a_letter_then_it_is_accepted_and_one_more_is_refused():
    marks = "\u0300\u0301\u0302\u0303\u0304"  # on x, which has no precomposed accented form
    assert validate_text("x" + marks[:MAX_MARKS_PER_GRAPHEME]) == "x" + marks[:4]
    assert "5 combining marks on one character" in text_refusal("x" + marks[: MAX_MARKS_PER_GRAPHEME + 1])


def test_given_a_character_of_exactly_10_code_points_then_it_is_accepted_and_11_are_refused():
    kiss = "\U0001f469\U0001f3fb\u200d\u2764\ufe0f\u200d\U0001f48b\u200d\U0001f468\U0001f3fc"
    assert len(kiss) == MAX_CODE_POINTS_PER_GRAPHEME
    assert validate_text(kiss) == kiss
    chain = ZWJ.join([MAN] * 6)
    assert len(chain) == 11
    assert "a character made of 11 code points" in text_refusal(chain)


# --- The timestamp: 0 and 2^53 - 1 are milliseconds a browser reads, -1 and 2^53 are not ---------


@pytest.mark.parametrize("ts", [0, 2**53 - 1], ids=["the epoch", "largest exact integer"])
def test_given_a_timestamp_at_either_end_of_the_range_when_rebuilt_then_it_is_kept(ts):
    assert comment_from_dict({"id": "a1", "ts": ts, "text": "hi"}).ts == ts


def test_given_data_without_a_timestamp_when_rebuilt_then_the_timestamp_is_the_epoch():
    assert comment_from_dict({"id": "a1", "text": "hi"}).ts == 0


@pytest.mark.parametrize(("ts", "shown"), [(-1, "-1"), (2**53, "9007199254740992"), ("5", "'5'"), (None, "None")])
def test_given_a_timestamp_outside_the_range_when_rebuilt_then_the_message_shows_it(ts, shown):
    error = refused(data={"id": "a1", "ts": ts, "text": "hi"})
    assert (error.code, error.message) == ("invalid_ts", f"ts must be milliseconds since the epoch; got {shown}")


@pytest.mark.parametrize(("comment_id", "shown"), [("", "''"), (42, "42"), (None, "None")])
def test_given_an_id_that_is_empty_or_not_a_string_when_rebuilt_then_it_is_refused(comment_id, shown):
    error = refused(data={"id": comment_id, "ts": 5, "text": "hi"})
    assert (error.code, error.message) == ("invalid_id", f"id must be a non-empty string; got {shown}")


# --- Joiners: accepted where a script needs them, refused one character away -------------------


def test_given_a_flag_tag_sequence_in_the_middle_of_the_text_then_it_is_accepted():
    assert validate_text(f"Scotland {SCOTLAND} wins") == f"Scotland {SCOTLAND} wins"


@pytest.mark.parametrize(
    ("text", "position"),
    [
        (ZWNJ + MEEM + YEH, 0),  # nothing before it
        ("a" + ZWNJ + BEH, 1),  # a Latin letter before an Arabic one
        (BEH + ZWNJ + "a", 1),  # an Arabic letter before a Latin one
        (BEH + ZWNJ + " " + BEH, 1),  # an Arabic letter before a space
    ],
    ids=["at the start", "after a Latin letter", "before a Latin letter", "before a space"],
)
def test_given_a_non_joiner_not_between_two_arabic_letters_then_it_is_refused(text, position):
    assert text_refusal(text) == (
        "text must not contain a zero-width non-joiner (U+200C) outside Arabic-script or Indic words; "
        f"found U+200C at position {position}; remove it"
    )


@pytest.mark.parametrize(
    ("text", "position"),
    [
        (ZWJ + KA + VIRAMA, 0),  # before the word, not after its virama
        (KA + VIRAMA + ZWJ, 2),  # after a virama, but no letter follows
        (MAN + "\u0bbe" + ZWJ + WOMAN, 2),  # an emoji, but a spacing vowel sign stands before the joiner
    ],
    ids=["before a Devanagari word", "after a final virama", "after a spacing mark on an emoji"],
)
def test_given_a_joiner_next_to_but_not_inside_a_sequence_then_it_is_refused(text, position):
    assert text_refusal(text) == (
        "text must not contain a zero-width joiner (U+200D) outside an emoji sequence; "
        f"found U+200D at position {position}; remove it"
    )


def test_given_a_virama_with_no_letter_before_its_joiner_then_the_stray_virama_is_what_is_refused():
    assert text_refusal(VIRAMA + ZWJ + KA) == (
        "text has a combining mark with no character to carry it at position 0 "
        "(counting characters after trimming; it starts with U+094D); remove it"
    )


@pytest.mark.parametrize(
    ("text", "reason", "code_point"),
    [
        ("\ufe0fhi", "a variation selector that follows no visible character", "U+FE0F at position 0"),
        ("ok\u202e", "bidirectional control characters (they reorder the text around them)", "U+202E at position 2"),
        (
            "a\U000e0067b",
            "tag characters outside a flag emoji (🏴 + tag letters + CANCEL TAG)",
            "U+E0067 at position 1",
        ),
        ("ok\u3164", "invisible filler characters (they draw nothing but count as text)", "U+3164 at position 2"),
        ("ok\x07", "control characters", "U+0007 at position 2"),
    ],
    ids=["variation selector first", "bidi control", "stray tag", "filler", "control"],
)
def test_given_a_hidden_character_then_the_message_names_the_reason_the_code_point_and_the_fix(
    text, reason, code_point
):
    assert text_refusal(text) == f"text must not contain {reason}; found {code_point}; remove it"


# --- What the messages show of a wrong value ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        (7, "a number"),
        (0.5, "a number"),
        ("x", "a string"),
        ([1], "an array"),
        ((1,), "an array"),
        ({"a": 1}, "an object"),
        (b"x", "binary data"),
        (object(), "object"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_given_a_value_then_its_json_type_name_is_what_a_json_client_calls_it(value, name):
    assert json_type_name(value) == name


@pytest.mark.parametrize(
    ("mode", "shown"),
    [([], "an array of 0 items"), (["top"], "an array of 1 item"), ({"a": 1, "b": 2}, "an object of 2 items")],
)
def test_given_a_list_or_object_where_a_word_belongs_then_the_message_counts_its_items(mode, shown):
    assert refused({"text": "hi", "mode": mode}).message == f"mode must be one of scroll, top, bottom; got {shown}"


def test_given_a_wrong_value_whose_repr_is_exactly_40_characters_then_the_message_shows_it_whole():
    room = "R" * 38  # repr: 40 characters with its quotes
    assert refused({"text": "hi", "room": room}).message.endswith(f"got '{room}'")


def test_given_a_wrong_value_whose_repr_is_41_characters_then_the_message_cuts_it_to_40():
    room = "R" * 39
    assert refused({"text": "hi", "room": room}).message.endswith(f"got '{'R' * 38}…")


@pytest.mark.parametrize(
    ("fields", "room", "code", "message"),
    [
        ([], None, "invalid_body", "a comment must be a JSON object; got an array"),
        ({"color": "#000000"}, None, "invalid_text", "text is required"),
        ({"text": 42}, None, "invalid_text", "text must be a string; got a number"),
        (
            {"text": "hi", "colour": "#000000"},
            None,
            "invalid_body",
            "unknown field 'colour'; known fields are text, color, mode, size, nick, room",
        ),
        (
            {"text": "hi", "room": "lobby"},
            "music",
            "invalid_room",
            "room in the body ('lobby') differs from the URL ('music')",
        ),
    ],
    ids=["not an object", "no text", "text not a string", "unknown field", "two rooms"],
)
def test_given_a_malformed_comment_then_the_error_names_the_field_and_says_what_is_wrong(fields, room, code, message):
    error = refused(fields, room=room)
    assert (error.field, error.code, error.message) == (code.removeprefix("invalid_"), code, message)


def test_given_data_that_is_not_an_object_when_rebuilt_then_the_message_names_its_type():
    assert refused(data="hi").message == "comment data must be a JSON object; got a string"


def test_given_a_comment_when_its_text_is_replaced_then_everything_else_is_kept():
    comment = Comment(id="c9", room="music", text="bad word", color="#FF0000", mode="top", size="large", nick="ann")
    assert comment.with_text("*** word") == Comment(
        id="c9", room="music", text="*** word", color="#FF0000", mode="top", size="large", nick="ann"
    )
