"""The shipped unit: valid for systemd, and hardened (exposure 1.5 or lower, GPU drop-in too)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

UNIT = ROOT / "systemd" / "inferwatch.service"
DROPIN = ROOT / "systemd" / "inferwatch.service.d" / "nvidia.conf"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed")


def _exposure(unit: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out
    return float(match.group(1))


def test_verify_with_the_real_binary(tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "inferwatch"
    assert binary.exists()
    unit = tmp_path / "inferwatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/inferwatch/bin/inferwatch", str(binary)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_exposure_of_the_base_unit(tmp_path: Path) -> None:
    shutil.copy(UNIT, tmp_path / UNIT.name)  # without the drop-in folder beside it
    assert _exposure(tmp_path / UNIT.name) <= 1.5


def test_exposure_with_the_gpu_dropin(tmp_path: Path) -> None:
    shutil.copy(UNIT, tmp_path / UNIT.name)
    (tmp_path / "inferwatch.service.d").mkdir()
    shutil.copy(DROPIN, tmp_path / "inferwatch.service.d" / DROPIN.name)
    assert _exposure(tmp_path / UNIT.name) <= 1.5


def test_unit_contract() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "RestartPreventExitStatus=78", "DynamicUser=yes",
                 "StateDirectory=inferwatch", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "MemoryMax=", "Restart=on-failure"):
        assert line in text, line


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_blas_threads_and_faulthandler_in_the_units_environment() -> None:
    from agent.process import BLAS_THREAD_VARIABLES  # noqa: PLC0415

    environment = " ".join(_settings(UNIT.read_text())["Environment"]).split()
    for name in BLAS_THREAD_VARIABLES[:4]:
        assert f"{name}=1" in environment
    assert "PYTHONFAULTHANDLER=1" in environment


def test_limits_fit_the_defaults() -> None:
    """The arithmetic in docs/configuration.md, against the values the code defaults to."""
    from agent.components import START_ORDER  # noqa: PLC0415
    from agent.config import AgentSection  # noqa: PLC0415
    from agent.process import DEFAULT_EXECUTOR_THREADS  # noqa: PLC0415

    settings = _settings(UNIT.read_text())
    agent = AgentSection(host_id="h", state_dir="/tmp")
    start = float(settings["TimeoutStartSec"][0].removesuffix("s"))
    assert start >= len(START_ORDER) * agent.start_timeout + 10
    stop = float(settings["TimeoutStopSec"][0].removesuffix("s"))
    assert stop > agent.stop_timeout
    tasks = int(settings["TasksMax"][0])
    threads = 1 + 8 + 3 + 1 + 2 + 1 + DEFAULT_EXECUTOR_THREADS  # docs: "The systemd unit"
    assert tasks >= 3 * threads
    assert settings["MemoryMax"] == ["320M"]
