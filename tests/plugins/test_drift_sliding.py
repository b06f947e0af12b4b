"""Sliding windows and several window specs hand the drift monitor each row more than once.
The reference it captures and the CUSUM it runs must still read each row once: a CUSUM fed
every row five times raised drift.detected on a stream that never changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.window import Window
from tests.plugins.test_drift import monitor


def _windows(x: np.ndarray, spec: str, size: int, step: int) -> list[Window]:
    """Count windows of `size` rows every `step` rows, one row a second."""
    out = []
    for first in range(0, len(x) - size + 1, step):
        rows = x[first:first + size]
        out.append(Window(model="m", model_version="1", spec=spec, start=float(first),
                          end=float(first + size - 1), task="regression", n=size,
                          y_pred=np.zeros(size), y_true=np.full(size, np.nan),
                          features={"x": rows}))
    return out


def test_a_sliding_spec_is_captured_and_read_once_per_row(tmp_path: Path) -> None:
    x = np.random.default_rng(7).normal(size=60_000)
    mon = monitor(tmp_path, reference_samples=1000)
    sequential = []
    for win in _windows(x, "500n/100n", 500, 100):
        results = mon.compute(win)
        if results is not None and results["sequential"]:
            sequential.append(win.start)
    profile = mon.refs.active[("m", "1")].profile
    assert profile.count == 1000  # rows 0..999, each once
    assert profile.numeric["x"].mean == pytest.approx(float(np.mean(x[:1000])), abs=1e-12)
    # The CUSUM reads windows that do not overlap what it read: rows 1000.. in 500s.
    assert sequential == [float(s) for s in range(1000, 59_501, 500)]
    assert mon.cusums[("m", "1")]["x"].samples == 59_000  # not five times as many


def test_a_second_spec_adds_no_rows_to_the_capture(tmp_path: Path) -> None:
    x = np.random.default_rng(8).normal(size=4000)
    mon = monitor(tmp_path, reference_samples=1000)
    for tumbling, large in zip(_windows(x, "500n", 500, 500), _windows(x, "500n", 500, 500),
                               strict=True):
        mon.compute(tumbling)
        mon.compute(Window(**{**large.__dict__, "spec": "1000n", "results": {}}))
        if ("m", "1") in mon.refs.active:
            break
    profile = mon.refs.active[("m", "1")].profile
    assert profile.count == 1000
    assert profile.numeric["x"].mean == pytest.approx(float(np.mean(x[:1000])), abs=1e-12)
