"""contrib/prometheus: the shipped rules pass promtool's checks and their unit tests, and use
only metrics the agent documents (so a renamed metric cannot leave a rule silently dead)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.helpers import ROOT

RULES = ROOT / "contrib" / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
# No YAML parser among the dependencies: the files' own simple shape is read with patterns.
ALERT = re.compile(r"^\s*- alert: (\w+)$", re.MULTILINE)
EXPR = re.compile(r"^\s*expr: (.+)$", re.MULTILINE)
FIRING_CASE = re.compile(r"alertname: (\w+)\n\s*exp_alerts:\n\s*- exp_labels:")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=RULES,
                          timeout=120, check=False)


def _text(name: str) -> str:
    return (RULES / name).read_text()


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "inferwatch-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERT.findall(_text('inferwatch-rules.yml')))} rules found" \
        in result.stdout


def test_promtool_test_rules() -> None:
    result = _promtool("test", "rules", "tests.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_firing_unit_test() -> None:
    rules = set(ALERT.findall(_text("inferwatch-rules.yml")))
    assert len(rules) == 16
    assert set(FIRING_CASE.findall(_text("tests.yml"))) == rules


def test_rules_use_documented_metrics_only() -> None:
    documented = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    used = {name for expr in EXPR.findall(_text("inferwatch-rules.yml"))
            for name in re.findall(r"inferwatch_[a-z0-9_]+", expr)}
    missing = sorted(n for n in used if f"`{n}" not in documented)
    assert not missing, f"rules use undocumented metrics: {missing}"
