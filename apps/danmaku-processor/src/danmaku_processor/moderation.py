"""The word filter: finds listed words in a comment's text, masks or blocks them.

Pure logic. Matching is by substring (Chinese and Japanese have no spaces between words)
and ignores case and compatibility forms, so "ＢａＤ" and "ﾊﾞｶ" match "bad" and "バカ".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MASK_CHAR = "*"


@dataclass(frozen=True)
class WordList:
    """Words as written: `mask` ones are starred out, `reject` ones block the comment."""

    mask: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    text: str  # the text to publish, masked words replaced by MASK_CHAR per character
    blocked: bool  # a reject word occurs: the comment must not be published


def fold(text: str) -> str:
    """Unicode's compatibility caseless form (NFKD, casefold, NFKD).

    Decomposed rather than NFKC because text is folded one character at a time, and a
    half-width voiced mark ("ﾊﾞ") only composes with the character before it.
    """
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())


def _fold_with_origins(text: str) -> tuple[str, list[int]]:
    """The folded text, and for each of its characters the index it came from in `text`.

    Folding can lengthen a character ("ﬁ" becomes "fi"), so positions in the folded text
    differ from the original's; the origins let masking star out exactly the originals.
    """
    pieces: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        piece = fold(char)
        pieces.append(piece)
        origins.extend([index] * len(piece))
    return "".join(pieces), origins


def _occurrences(haystack: str, needle: str) -> list[tuple[int, int]]:
    """Every (start, end) of `needle`, overlapping ones included."""
    spans = []
    start = haystack.find(needle)
    while start != -1:
        spans.append((start, start + len(needle)))
        start = haystack.find(needle, start + 1)
    return spans


def moderate(text: str, words: WordList) -> Verdict:
    folded, origins = _fold_with_origins(text)
    if any(fold(word) in folded for word in words.reject):
        return Verdict(text=text, blocked=True)
    masked: set[int] = set()
    for word in words.mask:
        for start, end in _occurrences(folded, fold(word)):
            masked.update(range(origins[start], origins[end - 1] + 1))
    return Verdict(
        text="".join(MASK_CHAR if index in masked else char for index, char in enumerate(text)),
        blocked=False,
    )
