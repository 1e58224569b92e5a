"""JSON from strangers: parsed with the standard library, refused when nested too deeply.

Python's parser recurses once per level, so a body of a few thousand `[` raises
RecursionError, which a web framework turns into a 500 (and an event dispatcher retries
a 500 for minutes). Every service parses what it is sent through `loads`, which turns
both the parser's recursion limit and a lower, explicit depth limit into
TooDeep (a ValueError), answered as a 400 naming the problem.
"""

from __future__ import annotations

import json
from typing import Any

# A comment is an object of strings (depth 1); a CloudEvent in structured mode wraps one
# (depth 2). Anything much deeper is not something these services were sent in good faith.
MAX_DEPTH = 32


class TooDeep(ValueError):
    """The JSON nests arrays and objects more deeply than allowed."""


def depth_of(value: Any) -> int:
    """How many arrays and objects nest inside one another in `value` (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """`value` itself, or TooDeep when it nests more than `max_depth` levels."""
    depth = depth_of(value)
    if depth > max_depth:
        raise TooDeep(f"JSON nested {depth} levels deep; at most {max_depth} levels of arrays and objects are accepted")
    return value


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, with TooDeep for nesting beyond `max_depth` (or beyond the parser's own limit)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(
            f"JSON nested too deeply for the parser; at most {max_depth} levels of arrays and objects are accepted"
        ) from None
    return check_depth(value, max_depth)
