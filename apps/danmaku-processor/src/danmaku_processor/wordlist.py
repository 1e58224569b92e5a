"""The word list file: its format, parsing and loading.

One entry per line: an action, then the word or phrase (the rest of the line):

    mask    spam
    reject  kill yourself

Blank lines and lines starting with `#` are ignored. The list shipped with the package
is `danmaku_processor/wordlist.txt`; DANMAKU_PROCESSOR_WORDLIST names another file.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from danmaku_events.comment import normalize_text
from danmaku_processor.moderation import WordList

ACTIONS = ("mask", "reject")


class WordListError(ValueError):
    """A word list file that cannot be used; the message names the file and line."""


def parse_wordlist(text: str, source: str) -> WordList:
    """Parse the file's `text`; `source` names it in errors."""
    entries: dict[str, list[str]] = {action: [] for action in ACTIONS}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ACTIONS:
            raise WordListError(f"{source}:{number}: expected 'mask <word>' or 'reject <word>'; got {line!r}")
        # Normalized like comment text, so a phrase's spacing matches what is published.
        entries[parts[0]].append(normalize_text(parts[1]))
    return WordList(mask=tuple(entries["mask"]), reject=tuple(entries["reject"]))


def load_wordlist(path: str | Path | None = None) -> WordList:
    """The list at `path`, or the one shipped with the package when `path` is None."""
    source = importlib.resources.files("danmaku_processor") / "wordlist.txt" if path is None else Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WordListError(
            f"cannot read the word list {source}: {error}; give the path of a UTF-8 text file"
        ) from error
    return parse_wordlist(text, str(source))
