"""docs/plugins.md keeps up with the code: every hook has a section with a runnable example
(run by test_toml_and_python.py) and a test of its own; every built-in plugin is named."""

from __future__ import annotations

import inspect
import re

import pytest

from agent import hookspecs
from agent.loader import discover
from tests.docs.examples import blocks
from tests.helpers import ROOT

PLUGINS_MD = ROOT / "docs" / "plugins.md"
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, f"{hookspecs.PROJECT}_spec"))
# Where a test of a hook may live: anywhere under tests/ but the docs' own checks.
TEST_FILES = [p for p in [*(ROOT / "tests").rglob("*.py"),
                          *(ROOT / "contrib").glob("*/tests/*.py")]
              if "docs" not in p.relative_to(ROOT).parts[:2]]


def test_the_hooks_are_found() -> None:
    assert {"inferwatch_components", "inferwatch_config_model"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_with_a_runnable_example(hook: str) -> None:
    text = PLUGINS_MD.read_text()
    assert f"### `{hook}`" in text, f"docs/plugins.md has no `### `{hook}`` section"
    section = text.split(f"### `{hook}`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    examples = [b for b in blocks("python") if b.path == PLUGINS_MD
                and re.search(rf"^def {hook}\(", b.text, re.MULTILINE) and b.text in section]
    assert examples, f"docs/plugins.md, {hook}: no Python example implementing it"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    found = [p for p in TEST_FILES if hook in p.read_text(errors="replace")]
    assert found, f"no test under tests/ mentions {hook}"


def test_every_builtin_plugin_is_named() -> None:
    text = PLUGINS_MD.read_text()
    builtins = [r.name for r in discover().records if r.origin == "built-in"]
    missing = [name for name in builtins if f"| `{name}` |" not in text]
    assert not missing, f"built-in plugins missing from docs/plugins.md: {missing}"
