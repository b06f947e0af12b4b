"""`inferwatch demo` shows each promised signal at the time its docs give, on a short clock.

The docs' timeline (agent/demo.py, docs/ingestion.md), with W the window, L the label delay
and D the drift time: a running view of the open window within the first report; the
realized-vs-estimated gap once a window is final; `quality.degraded` by D + 2W and
`drift.detected` by D + 3W, neither before D. Here W = 4 s, L = 1 s, D = 8 s; SLACK covers
the collection intervals (2 s) and the report interval (W / 2) on a loaded machine.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.integration
W, L, D, SLACK = 4, 1, 8, 5


@pytest.mark.timeout(150)
def test_demo_timeline_on_a_short_clock() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--seconds", str(D + 3 * W + SLACK + 3),
         "--drift-after", str(D), "--rate", "150", "--label-delay", str(L),
         "--window", f"{W}s", "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=140, cwd=ROOT, check=True)
    text = out.stdout
    assert "Traceback" not in out.stderr
    assert "cannot reach the agent" not in out.stderr, "the demo waits for the agent"
    events: dict[str, int] = {}  # each kind's first: a later window may raise it again
    for t, kind in re.findall(r"\[\s*(\d+)s\] event: (\S+)", text):
        events.setdefault(kind, int(t))
    assert D <= events["quality.degraded"] <= D + 2 * W + SLACK, text
    assert D <= events["drift.detected"] <= D + 3 * W + SLACK, text
    running = [int(t) for t, _ in re.findall(r"\[\s*(\d+)s\][^\n]*\n\s+window so far \((\S+)\)",
                                              text)]
    assert running, text
    assert running[0] <= W + SLACK, text
    assert f"({W}s:running)" in text
    assert re.search(r"gap=-?[\d.]+", text), text
    accuracy = [float(a) for a in re.findall(r"\] \w+ inputs: .*?accuracy=([\d.]+)", text)]
    assert accuracy[0] > 0.93 > accuracy[-1], text  # the threshold the demo sets
