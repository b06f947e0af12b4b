"""The short soak (`make soak`): every plugin on under load for 90 s, within generous bounds.

Opt-in (INFERWATCH_SOAK=1): it takes two minutes, more than `make test`'s budget allows.
The long run and its figures are in bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [
    pytest.mark.soak, pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("INFERWATCH_SOAK"),
                       reason="opt-in: `make soak` (INFERWATCH_SOAK=1)"),
]


@pytest.mark.timeout(300)
def test_short_soak_stays_flat() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "1.5", "--every", "5",
         "--check"], capture_output=True, text=True, timeout=280, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["samples_received"] > 0
    assert summary["scrapes"] > 20
