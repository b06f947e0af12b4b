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
