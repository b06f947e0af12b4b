"""The seams hold, read from the source (ast, nothing imported): the core imports no plugin,
and a plugin imports the core and its own package only, so any plugin can be removed,
replaced or installed apart. What plugins share lives in `agent/` or behind a hook."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

# (importing module, imported module) pairs allowed across plugins, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str) -> Iterator[str]:
    """Every module `source` imports, anywhere (functions, TYPE_CHECKING blocks), relative
    imports resolved against `module`, and `importlib.import_module("...")` literals."""
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level]) if node.level else ""
            name = ".".join(p for p in (base, node.module or "") if p)
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", "")) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _foreign(path: Path, own: str | None) -> list[str]:
    """The plugin modules `path` imports that are not of package `own` (None: any)."""
    module = _module(path)
    names = imported(path.read_text(encoding="utf-8"), module)
    mine = f"plugins.{own}" if own else None
    return sorted({n for n in names if (n == "plugins" or n.startswith("plugins."))
                   and not (mine and (n == mine or n.startswith(f"{mine}.")))
                   and (module, n) not in EXCEPTIONS})


@pytest.mark.parametrize("path", _sources("agent"), ids=lambda p: p.name)
def test_the_core_imports_no_plugin(path: Path) -> None:
    assert _foreign(path, None) == []


@pytest.mark.parametrize("path", [p for p in _sources("plugins") if p.parent != ROOT / "plugins"],
                         ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_a_plugin_imports_only_the_core_and_itself(path: Path) -> None:
    assert _foreign(path, _module(path).split(".")[1]) == []


def test_the_check_sees_every_form_of_import() -> None:
    """The checker itself: each form a cross-plugin import can take is found."""
    source = ("import plugins.drift.profile\n"
              "from plugins.ingest import replay\n"
              "def f():\n    from ..mqtt.config import topic_problem\n"
              "if TYPE_CHECKING:\n    from plugins.quality.monitor import QualityMonitor\n"
              "importlib.import_module('plugins.host')\n")
    found = set(imported(source, "plugins.audit.command"))
    assert {"plugins.drift.profile", "plugins.ingest.replay", "plugins.mqtt.config",
            "plugins.quality.monitor", "plugins.host"} <= found
