"""`inferwatch demo` shows quality moving when the inputs drift, with nothing else running."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.integration


def test_demo_shows_accuracy_fall_after_drift() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--seconds", "26", "--drift-after", "10",
         "--rate", "100", "--label-delay", "1", "--window", "5s",
         "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=90, cwd=ROOT, check=True)
    accuracy = [float(a) for a in re.findall(r"accuracy=([\d.]+)", out.stdout)]
    assert len(accuracy) >= 2, out.stdout + out.stderr
    assert accuracy[0] > 0.9  # before the drift
    assert accuracy[-1] < accuracy[0] - 0.03, out.stdout  # after it
    assert "drift=1" in out.stdout  # and the drift monitor declared it
    assert "Traceback" not in out.stderr
