"""Label matchers as in PromQL (`name="v"`, `!=`, `=~`, `!~`), compiled once per rule.

Regexes are fully anchored, as in Prometheus: `mountpoint=~"/var.*"` matches the whole value.
A label a series does not have reads as "", so `gpu=""` selects series without `gpu`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_MATCHER = re.compile(
    r'^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*$')
MAX_REGEX = 1000  # characters; a pattern longer than this is a mistake, not a rule


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    test: Callable[[str], bool]

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    """`name op "value"`; raise ValueError naming what is wrong (for `inferwatch check`)."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f'{text!r} is not a matcher like \'gpu="0"\', \'mountpoint=~"/var.*"\'')
    name, op = found["name"], found["op"]
    value = found["value"].encode().decode("unicode_escape") if "\\" in found["value"] \
        else found["value"]
    return Matcher(name, op, value, _test(op, value))


def _test(op: str, value: str) -> Callable[[str], bool]:
    if op in ("=", "!="):
        return value.__eq__ if op == "=" else value.__ne__
    if len(value) > MAX_REGEX:
        raise ValueError(f"regex longer than {MAX_REGEX} characters")
    try:
        pattern = re.compile(f"(?:{value})\\Z")
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None
    if op == "=~":
        return lambda text: pattern.match(text) is not None
    return lambda text: pattern.match(text) is None


def parse_matchers(texts: Sequence[str]) -> list[Matcher]:
    return [parse_matcher(t) for t in texts]


def compile_selector(matchers: Sequence[Matcher], names: Sequence[str]
                     ) -> Callable[[tuple[str, ...]], bool]:
    """A predicate over a family's label-value tuples (label names in `names` order)."""
    checks: list[tuple[int, Callable[[str], bool]]] = []
    for m in matchers:
        if m.name in names:
            checks.append((names.index(m.name), m.test))
        elif not m.test(""):  # the family has no such label: its series all read ""
            return lambda _values: False
    if not checks:
        return lambda _values: True
    if len(checks) == 1:
        (index, test), = checks
        return lambda values: test(values[index])
    return lambda values: all(test(values[i]) for i, test in checks)


def scalar_text(value: object) -> str | None:
    """How an event attribute compares with a matcher: scalars as text (True -> "true",
    1.0 -> "1"), anything else does not compare (None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    return None
