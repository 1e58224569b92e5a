"""Trigger filters: which events a Trigger passes to its subscriber, as Knative decides.

Two forms, as in Knative's Trigger v1:
- `filter.attributes`: every listed attribute must equal its value exactly; an empty
  value matches anything (Knative's "any" filter).
- `filters`: a list of dialect expressions, all of which must match: `exact`, `prefix`,
  `suffix` (each a map of attribute to string), `all` and `any` (lists of expressions)
  and `not` (one expression). When `filters` is given, `filter` is ignored.
An attribute the event does not have matches nothing but the "any" filter.
Pure logic: an event is represented by its attributes as strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Attributes = Mapping[str, str]
Predicate = Callable[[Attributes], bool]
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not")


class InvalidFilter(ValueError):
    """A filter expression is malformed; `path` says where, the message what and how to fix it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _string_map(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidFilter(path, "must map one or more attribute names to strings")
    for name, text in value.items():
        if not isinstance(text, str) or not text:
            raise InvalidFilter(f"{path}.{name}", f"must be a non-empty string; got {text!r}")
    return dict(value)


def compile_expression(expression: Any, path: str) -> Predicate:
    """One `filters` entry as a predicate; InvalidFilter when it is malformed."""
    if not isinstance(expression, Mapping) or len(expression) != 1:
        raise InvalidFilter(path, f"must have exactly one dialect of {', '.join(DIALECTS)}; got {expression!r}")
    ((dialect, value),) = expression.items()
    where = f"{path}.{dialect}"
    if dialect in ("exact", "prefix", "suffix"):
        wanted = _string_map(value, where)
        test: Callable[[str, str], bool] = {
            "exact": str.__eq__, "prefix": str.startswith, "suffix": str.endswith,
        }[dialect]  # fmt: skip
        return lambda event: all(name in event and test(event[name], text) for name, text in wanted.items())
    if dialect in ("all", "any"):
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise InvalidFilter(where, "must be a list of one or more filter expressions")
        parts = [compile_expression(item, f"{where}[{index}]") for index, item in enumerate(value)]
        combine = all if dialect == "all" else any
        return lambda event: combine(part(event) for part in parts)
    if dialect == "not":
        inner = compile_expression(value, where)
        return lambda event: not inner(event)
    if dialect == "cesql":
        raise InvalidFilter(where, "CESQL is not supported; use exact, prefix, suffix, all, any or not")
    raise InvalidFilter(path, f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


def compile_trigger_filter(attributes: Mapping[str, str] | None, filters: Sequence[Any] | None) -> Predicate:
    """The predicate a Trigger applies: `filters` when given, else `filter.attributes`."""
    if filters:
        parts = [compile_expression(item, f"spec.filters[{index}]") for index, item in enumerate(filters)]
        return lambda event: all(part(event) for part in parts)
    wanted = dict(attributes or {})
    return lambda event: all(value == "" or event.get(name) == value for name, value in wanted.items())
