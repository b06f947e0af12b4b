"""Annotation templates: `string.Template` with dotted names over plain data, nothing else.

`$value`, `${labels.model}`, `${data.top_features}`, `${data.evidence.metrics.accuracy}`:
a name is a path through dicts (and list items by position) of the alert's own plain data;
there is no attribute access, no call, no format spec, so a template cannot reach into the
agent. Lists read as `a, b, c` (a drift finding reads as its feature's name); numbers as
`%.4g`. A name that is missing or a template that does not render yields the raw template
text and counts an error: the alert is sent all the same.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from typing import Any

ROOTS = frozenset({"alertname", "severity", "host", "value", "fire", "clear", "labels",
                   "data", "attributes", "rule_kind", "fingerprint"})
MAX_TEXT = 2000  # characters of one rendered annotation
MAX_DEPTH = 4  # levels of nested lists and tables rendered


class AlertTemplate(string.Template):
    idpattern = r"(?a:[_a-z][_a-z0-9]*(?:\.[_a-z0-9-]+)*)"  # `.` steps into data


class _Lookup(Mapping[str, str]):
    """Resolves `a.b.c` in plain data at substitution time; KeyError when absent."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self._scope = scope

    def __getitem__(self, name: str) -> str:
        return text(resolve(self._scope, name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope)

    def __len__(self) -> int:
        return len(self._scope)


def resolve(scope: Mapping[str, Any], name: str) -> Any:
    """The value at a dotted path through dicts and lists; KeyError when any step is absent."""
    found: Any = scope
    for part in name.split("."):
        if isinstance(found, Mapping) and part in found:
            found = found[part]
        elif isinstance(found, list) and part.isdigit() and int(part) < len(found):
            found = found[int(part)]
        else:
            raise KeyError(name)
    return found


def text(value: Any, depth: int = 0) -> str:
    """Plain data as text; nesting deeper than MAX_DEPTH reads `...` (evidence is small, but
    a list nested 600 deep is small too, and recursed past Python's limit)."""
    if not isinstance(value, list | Mapping):
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, list):
        return ", ".join(text(item, depth + 1) for item in value[:20])
    for key in ("feature", "name", "metric"):
        if isinstance(value.get(key), str):
            return str(value[key])
    return ", ".join(f"{k}={text(v, depth + 1)}" for k, v in list(value.items())[:20])


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def problems(template: str) -> list[str]:
    """What keeps `template` from rendering, for `inferwatch check` (empty: fine)."""
    parsed = AlertTemplate(template)
    if not parsed.is_valid():
        return [f"invalid template {template!r}: a `$` must start a name like $value or "
                "${labels.model} (write $$ for a dollar sign)"]
    return [f"unknown name ${{{name}}} (names start with one of: {', '.join(sorted(ROOTS))})"
            for name in parsed.get_identifiers() if name.split(".", 1)[0] not in ROOTS]


def render(template: str, scope: Mapping[str, Any]) -> tuple[str, bool]:
    """The rendered text and whether it rendered; on any failure the raw template."""
    if "$" not in template:
        return template, True
    try:
        return AlertTemplate(template).substitute(_Lookup(scope))[:MAX_TEXT], True
    except (KeyError, ValueError, TypeError):
        return template, False
