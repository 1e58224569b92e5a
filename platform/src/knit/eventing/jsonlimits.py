"""JSON from strangers, for knit's eventing processes: parsed with the standard library,
refused when nested too deeply.

Python's parser (and serializer) recurse once per level, so a body of a few thousand `[`
raises RecursionError, which aiohttp answers 500 and a dispatcher would log as a crash.
The Broker ingress and the dispatcher's record conversion parse through `loads`, which
turns both the parser's recursion limit and an explicit depth limit into TooDeep (a
ValueError), answered as a 400 (or a record skipped) naming the problem. This mirrors the
danmaku app's `danmaku_events.jsonlimits`; the platform imports no app's packages.
"""

from __future__ import annotations

import json
from typing import Any

# Far deeper than events are in practice, and far from the interpreter's recursion limit
# (1000 frames), so what was parsed can be serialized again from inside a deep call stack.
MAX_DEPTH = 64


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


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, with TooDeep for nesting beyond `max_depth` (or beyond the parser's own limit)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(
            f"JSON nested too deeply for the parser; at most {max_depth} levels of arrays and objects are accepted"
        ) from None
    depth = depth_of(value)
    if depth > max_depth:
        raise TooDeep(f"JSON nested {depth} levels deep; at most {max_depth} levels of arrays and objects are accepted")
    return value
