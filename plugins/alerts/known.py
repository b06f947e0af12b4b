"""Which metric names exist, so a rule over a misspelt one is refused by `inferwatch check`.

Known: the agent's own series, every `MetricDef` declared in this process (agent.metrics
.DECLARED, after importing each installed plugin's `metrics` module, which by convention
holds them and imports nothing heavy), and every `"inferwatch_..."` literal in the source of
the installed plugin packages (series named in place, e.g. the ingest plugin's). Nothing
heavier is imported, so a host-only agent stays small.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import importlib.util
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from agent.hookspecs import PROJECT
from agent.metrics import DECLARED

if TYPE_CHECKING:
    from plugins.alerts.config import AlertsConfig, RuleConfig

_LITERAL = re.compile(r"[\"'](inferwatch_[a-z0-9_]+)[\"']")
MAX_FILES = 2000  # per package: a scan never walks a huge tree
_SUFFIXES = ("_count", "_sum", "_bucket")


def known_metrics() -> frozenset[str]:
    names = set(_static())
    names |= DECLARED
    return frozenset(names)


@functools.cache
def _static() -> frozenset[str]:
    names: set[str] = set(_self_metrics())
    for package in sorted({ep.value.split(":")[0] for ep in entry_points(group=PROJECT)}):
        with contextlib.suppress(Exception):  # a broken plugin: its names are not known
            importlib.import_module(f"{package}.metrics")
        names |= _literals(package)
    return frozenset(names)


def _self_metrics() -> set[str]:
    from agent.selfmetrics import SelfMetrics  # noqa: PLC0415

    found: set[str] = set()
    for family in SelfMetrics().registry.collect():
        found.add(family.name)
        found.update(s.name for s in family.samples)
    found |= {f"{n}_total" for n in found}  # a counter family is named without _total
    return found


def _literals(package: str) -> set[str]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return set()
    if spec is None or spec.origin is None:
        return set()
    root = Path(spec.origin).parent
    files = [root / Path(spec.origin).name] if not spec.submodule_search_locations \
        else list(root.rglob("*.py"))[:MAX_FILES]
    found: set[str] = set()
    for path in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found.update(_LITERAL.findall(path.read_text(encoding="utf-8")))
    return found


def is_known(name: str, known: frozenset[str]) -> bool:
    return name in known or (name.endswith(_SUFFIXES) and name.rsplit("_", 1)[0] in known)


def unknown_metrics(config: AlertsConfig) -> list[tuple[str, str]]:
    """(TOML key, problem) for each user rule over a metric nobody declares."""
    return [found for i, rule in enumerate(config.rules)
            for found in unknown_in(rule, f"rules[{i}].")]


def unknown_in(rule: RuleConfig, prefix: str) -> list[tuple[str, str]]:
    known = known_metrics()
    found = []
    for key in ("metric", "divide_by"):
        name = getattr(rule, key)
        if name and not is_known(name, known):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append((f"{prefix}{key}", f"no loaded plugin exports {name}{hint}; "
                          'set unknown_metrics = "warn" for a metric named at run time'))
    return found


def check_config(config: AlertsConfig) -> list[tuple[str, str]]:
    from plugins.alerts.builtin import BUILTIN_NAMES  # noqa: PLC0415

    ours = {r.name for r in config.rules} | BUILTIN_NAMES
    found = [(f"disabled_rules[{i}]", f"no rule named {name!r}")
             for i, name in enumerate(config.disabled_rules) if name not in ours]
    if config.unknown_metrics == "error":
        found += unknown_metrics(config)
    return found
