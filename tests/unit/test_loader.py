"""Plugin discovery through real entry points (a dist-info on sys.path), not monkeypatching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


def _distribution(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
                  ) -> None:
    dist = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[inferwatch]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    _distribution(tmp_path, "iw-good", {"good": "iw_good"}, {"iw_good": (
        "from agent import hookimpl, PluginConfig\n__version__ = '1.2.3'\n"
        "class C(PluginConfig):\n    colour: str = 'blue'\n"
        "@hookimpl\ndef inferwatch_config_model():\n    return C\n"
        "@hookimpl\ndef inferwatch_components(config, ctx):\n    return []\n")})
    _distribution(tmp_path, "iw-broken", {"broken": "iw_broken"},
                  {"iw_broken": "raise ImportError('needs libfoo')\n"})
    _distribution(tmp_path, "iw-typo", {"typo": "iw_typo"}, {"iw_typo": (
        "from agent import hookimpl\n@hookimpl\ndef inferwatch_componets(config, ctx):\n"
        "    return []\n")})
    return {"PYTHONPATH": str(tmp_path)}


def test_plugins_lists_builtin_external_and_broken(site: dict[str, str]) -> None:
    result = run_cli("plugins", "--json", env=site)
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["host"]["origin"] == "built-in"
    assert records["host"]["distribution"] == "inferwatch"
    assert records["host"]["hooks"] == ["inferwatch_audit_checks", "inferwatch_components",
                                        "inferwatch_config_model"]
    assert records["good"]["origin"] == "entry point"
    assert records["good"]["version"] == "1.2.3"
    assert records["broken"]["error"] == "ImportError: needs libfoo"
    assert "inferwatch_componets" in records["typo"]["error"]  # a misspelled hook fails loudly
    assert result.returncode == 78


def test_broken_plugin_skipped_unless_strict(site: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "s"}"\n'
                      "[plugins.good]\ncolour = 'red'\n")
    relaxed = run_cli("check", "-c", str(config), env=site)
    assert relaxed.returncode == 0, relaxed.stderr
    assert "inferwatch: warning: plugin broken: ImportError: needs libfoo" in relaxed.stderr
    assert "good" in relaxed.stdout
    strict = run_cli("check", "--strict-plugins", "-c", str(config), env=site)
    assert strict.returncode == 78
    assert "inferwatch: error: plugin broken: ImportError: needs libfoo" in strict.stderr


def test_external_plugin_config_is_typed(site: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "s"}"\n[plugins.good]\ncolour = 3\n')
    result = run_cli("check", "-c", str(config), env=site)
    assert result.returncode == 78
    assert "plugins.good.colour: Expected `str`, got `int`" in result.stderr


def test_command_line_plugin_object_and_names() -> None:
    from agent.loader import discover  # noqa: PLC0415

    found = discover(["tick=tests.fixtures.iwtest.common:ticker",
                      "tests.fixtures.iwtest.common:raiser", "nosuch.module"])
    records = {r.name: r for r in found.records if r.origin == "command line"}
    assert records["tick"].hooks == ["inferwatch_components", "inferwatch_config_model"]
    assert records["tick"].module == "tests.fixtures.iwtest.common:ticker"
    assert records["raiser"].error is None, "the default name is the attribute"
    assert records["module"].error == "ModuleNotFoundError: No module named 'nosuch'"
