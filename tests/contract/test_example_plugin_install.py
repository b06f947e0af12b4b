"""The example plugin, installed into a fresh virtualenv, is found through its entry point.

Nothing is downloaded: inferwatch (editable, from this checkout) and the example plugin (a
real wheel build, from a copy of its folder) are installed with --no-deps, and the running
environment's site-packages is reused through a .pth file for their dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def test_a_fresh_virtualenv_sees_the_example_plugin_by_its_entry_point(tmp_path: Path) -> None:
    venv, parent = tmp_path / "venv", sysconfig.get_paths()["purelib"]
    _run(sys.executable, "-m", "venv", venv)
    (_site_packages(venv) / "_inferwatch_deps.pth").write_text(parent + "\n")
    python = venv / "bin" / "python"
    plugin = shutil.copytree(ROOT / "contrib" / "example-plugin", tmp_path / "example-plugin",
                             ignore=shutil.ignore_patterns("*.egg-info", "build", "tests"))
    # The build runs with this environment's setuptools (ensurepip's is too old for
    # inferwatch's pyproject.toml): PYTHONPATH wins over the venv's own site-packages.
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--no-build-isolation", "--no-index"]
    _run(*pip, "-e", ROOT, env={"PYTHONPATH": parent})
    before = _run(venv / "bin" / "inferwatch", "plugins")
    assert "model_files" not in before
    _run(*pip, plugin, env={"PYTHONPATH": parent})
    listed = _run(venv / "bin" / "inferwatch", "plugins").splitlines()
    (line,) = [n for n, text in enumerate(listed) if text.startswith("model_files ")]
    assert listed[line].split() == ["model_files", "entry", "point", "inferwatch-model-files",
                                    "0.1.0"]
    assert listed[line + 1].split() == ["hooks:", "inferwatch_components,",
                                        "inferwatch_config_model"]
    where = _run(python, "-c", "import inferwatch_model_files; print(inferwatch_model_files"
                 ".__file__)")
    assert where.startswith(str(_site_packages(venv)))  # the installed copy, not src/
