"""The word list file: its format, the list shipped with the package, and bad files."""

import re

import pytest

from danmaku_processor.moderation import WordList
from danmaku_processor.wordlist import WordListError, load_wordlist, parse_wordlist


def test_entries_are_read_by_action_skipping_comments_and_blank_lines():
    text = "# moderators' list\n\nmask spam\nreject   kill   yourself\n\tmask\t傻瓜\n"
    assert parse_wordlist(text, "words.txt") == WordList(mask=("spam", "傻瓜"), reject=("kill yourself",))


@pytest.mark.parametrize(
    ("line", "shown"),
    [("hide spam", "'hide spam'"), ("mask", "'mask'"), ("spam", "'spam'")],
)
def test_a_malformed_line_is_reported_with_file_and_line_number(line, shown):
    expected = f"words.txt:3: expected 'mask <word>' or 'reject <word>'; got {shown}"
    with pytest.raises(WordListError, match=re.escape(expected)):
        parse_wordlist(f"# list\nmask idiot\n{line}\n", "words.txt")


def test_the_shipped_list_masks_and_rejects_words_in_several_languages():
    words = load_wordlist()
    assert {"spam", "idiot", "傻瓜", "バカ"} <= set(words.mask)
    assert {"kill yourself", "去死", "死ね"} <= set(words.reject)


def test_a_list_is_loaded_from_a_given_path(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("reject 广告\n", encoding="utf-8")
    assert load_wordlist(path) == WordList(reject=("广告",))


def test_a_missing_file_is_reported_with_its_path(tmp_path):
    with pytest.raises(WordListError, match=r"cannot read the word list .*missing\.txt"):
        load_wordlist(tmp_path / "missing.txt")
