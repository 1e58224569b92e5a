"""The word filter: which words it finds, what it stars out, when it blocks."""

import pytest

from danmaku_processor.moderation import Verdict, WordList, moderate

WORDS = WordList(mask=("spam", "idiot", "stupid", "傻瓜", "バカ"), reject=("kill yourself", "死ね"))


def test_a_clean_comment_is_published_unchanged():
    verdict = moderate("great solo at 3:15 ♪", WORDS)
    assert verdict.text == "great solo at 3:15 ♪"
    assert not verdict.blocked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("what an IDIOT lol", "what an ***** lol"),  # case is ignored
        ("Stop the ｓｐａｍ", "Stop the ****"),  # full-width letters fold to ASCII
        ("你这个傻瓜哈哈", "你这个**哈哈"),  # found inside CJK text, which has no spaces
        ("ﾊﾞｶじゃないの", "***じゃないの"),  # half-width katakana, voiced mark a character of its own
        ("spam spam and more SPAM", "**** **** and more ****"),  # every occurrence
    ],
)
def test_a_mask_word_is_starred_out_character_for_character(text, masked):
    verdict = moderate(text, WORDS)
    assert verdict.text == masked
    assert not verdict.blocked


def test_overlapping_mask_words_star_out_their_union():
    assert moderate("you stupidiot", WORDS).text == "you *********"


def test_a_word_inside_a_longer_one_is_starred_out_alone():
    assert moderate("spammers everywhere", WORDS).text == "****mers everywhere"


def test_a_character_that_folds_to_several_is_starred_out_once():
    # "ﬁ" (one character) folds to "fi": the mask must cover it, and no more, in the original.
    verdict = moderate("huge proﬁt, act now!", WordList(mask=("profit",)))
    assert verdict.text == "huge *****, act now!"


def test_a_word_ending_inside_a_folded_character_stars_out_that_whole_character():
    assert moderate("ﬁne", WordList(mask=("f",))).text == "*ne"


@pytest.mark.parametrize("text", ["just KILL YOURSELF", "お前なんか死ね", "ｋｉｌｌ ｙｏｕｒｓｅｌｆ now"])
def test_a_reject_word_blocks_the_comment(text):
    assert moderate(text, WORDS).blocked


def test_a_reject_word_blocks_even_when_mask_words_are_present():
    assert moderate("spam and 死ね", WORDS).blocked


def test_given_a_mask_word_that_overlaps_itself_one_character_on_then_every_character_is_starred():
    # "www" is laughter in Japanese chat; "wwww" holds it at 0 and at 1.
    assert moderate("wwww lol", WordList(mask=("www",))).text == "**** lol"


def test_given_a_reject_word_then_the_verdict_blocks_and_keeps_the_text_as_sent():
    assert moderate("just KILL YOURSELF", WORDS) == Verdict(text="just KILL YOURSELF", blocked=True)


def test_given_only_mask_words_then_the_verdict_does_not_block():
    assert moderate("what an IDIOT", WORDS) == Verdict(text="what an *****", blocked=False)
