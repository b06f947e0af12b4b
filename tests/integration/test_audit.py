"""`inferwatch audit` as users run it, and the scheduled audit inside the real agent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import FIXTURES, agent_env, poll, run_cli, value

pytestmark = pytest.mark.integration
HEALTHY = FIXTURES / "audit" / "healthy"
# What this machine (a loaded 2-core VM with an unsynchronised clock) cannot pass.
SKIP = '["os.clock", "storage.*", "network.*", "integration.*"]'


def _audit(config: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = run_cli("audit", "-c", str(config), "--format", "json", *args)
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def test_a_ready_host_exits_0(write_config: ConfigWriter) -> None:
    config, _ = write_config(f'[plugins.audit]\nroot = "{HEALTHY}"\nskip = {SKIP}\n')
    code, doc = _audit(config)
    assert (code, doc["status"]) == (0, "ready")
    names = [c["name"] for c in doc["checks"]]  # type: ignore[attr-defined]
    assert names[:2] == ["config", "config.state_dir"]
    assert {"cpu.isa", "memory.size", "os.kernel", "gpu.driver"} <= set(names)


def test_warnings_exit_1_and_failures_exit_2(write_config: ConfigWriter,
                                             tmp_path: Path) -> None:
    config, _ = write_config(f'[plugins.audit]\nroot = "{FIXTURES / "audit" / "degraded"}"\n'
                             f'skip = {SKIP}\n')
    code, doc = _audit(config)
    assert (code, doc["status"]) == (2, "not_ready")  # CPU steal 15%
    checks = {c["name"]: c for c in doc["checks"]}  # type: ignore[attr-defined]
    assert checks["cpu.steal"]["status"] == "fail"
    assert set(checks["cpu.steal"]) == {"name", "status", "value", "threshold", "why", "fix"}
    config.write_text(config.read_text().replace('"os.clock"', '"os.clock", "cpu.steal"'))
    assert _audit(config)[0] == 1


def test_an_invalid_config_is_a_failed_check_and_the_rest_still_runs(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[agent]\nlog_level = "loud"\n[plugins.nope]\n')
    code, doc = _audit(config)
    assert code == 2
    first = doc["checks"][0]  # type: ignore[index]
    assert first["name"] == "config"
    assert first["status"] == "fail"
    assert "agent.log_level: must be one of" in first["value"]
    assert "plugins.nope: no plugin named 'nope'" in first["value"]
    assert any(c["name"] == "cpu.cores" for c in doc["checks"])  # type: ignore[attr-defined]


def test_markdown_and_table_formats(write_config: ConfigWriter) -> None:
    config, _ = write_config(f'[plugins.audit]\nroot = "{HEALTHY}"\nskip = {SKIP}\n')
    md = run_cli("audit", "-c", str(config), "--format", "markdown")
    assert md.returncode == 0
    assert md.stdout.startswith("# inferwatch audit: ready\n")
    assert "| pass | `cpu.isa` | avx2 avx512f avx512_vnni avx512_bf16 amx_tile |" in md.stdout
    table = run_cli("audit", "-c", str(config))
    assert re.search(r"^PASS\s+memory\.thp\s+madvise", table.stdout, re.MULTILINE)
    assert "\033[" not in table.stdout  # not a TTY: no colour
    assert "READY: " in table.stdout


def test_the_audit_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    state = tmp_path / "state-not-created"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n[plugins.audit]\nroot = "{HEALTHY}"\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    _audit(config)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not state.exists()


def test_the_running_agent_audits_on_a_schedule(write_config: ConfigWriter,
                                                agent_factory) -> None:  # type: ignore[no-untyped-def]
    config, port = write_config(
        f'[plugins.audit]\nenabled = true\nroot = "{HEALTHY}"\nprobe_bytes = 1048576\n'
        'probe_seconds = 1\n[plugins.eventlog]\nenabled = true\n[plugins.host]\nenabled = false\n')
    agent = agent_factory(config, port)

    def audited() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        metrics = agent.scrape()
        return metrics if value(metrics, "inferwatch_audit_status") is not None else None

    metrics = poll(audited, timeout=30, what="the first scheduled audit")
    assert value(metrics, "inferwatch_audit_check_status", check="cpu.isa") == 0
    assert value(metrics, "inferwatch_audit_check_status", check="config") == 0
    # The agent is listening, so the scrape check scrapes it.
    assert value(metrics, "inferwatch_audit_check_status", check="integration.prometheus") == 0
    events = poll(lambda: [json.loads(line)["envelope"] for line in agent.log().splitlines()
                           if '"audit.report"' in line], what="the audit.report event")
    report = events[0]["data"]
    assert report["status"] in {"ready", "warnings", "not_ready"}
    assert {c["name"] for c in report["checks"]} >= {"cpu.isa", "memory.size", "os.kernel"}
    assert events[0]["attributes"] == {"status": report["status"]}
    assert agent.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to drop every capability with setpriv")
def test_runs_without_any_privilege(write_config: ConfigWriter) -> None:
    """As root with an empty capability set: no file-permission override, no CAP_SYSLOG."""
    config, _ = write_config(f'[plugins.audit]\nroot = "{HEALTHY}"\nskip = {SKIP}\n')
    result = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "agent",
         "audit", "-c", str(config), "--format", "json"],
        capture_output=True, text=True, env=agent_env(), timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ready"
