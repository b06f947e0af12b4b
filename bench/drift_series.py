"""What exporting a drift check's series costs beside the check, in one process so that the
machine's load cancels out: `monitor.compute()` (the check, its series included) against
`exports.window_series()` alone, on the same 10,000-row, 25-feature window.

    .venv/bin/python bench/drift_series.py --repeat 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift import columns, frame, window  # bench/drift.py: the same data as the drift bench

from agent.context import PluginContext
from agent.metrics import PluginMetrics
from plugins.drift import exports as ex
from plugins.drift.config import DriftConfig
from plugins.drift.monitor import DriftMonitor
from plugins.drift.profile import build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    profile = build(columns(*frame(rng, 100_000)), model="m", model_version="1")
    config = DriftConfig(sequential=False)
    ctx = PluginContext(plugin="drift", config=config, host_id="bench",
                        state_root=Path(tempfile.mkdtemp()), metrics=PluginMetrics("d", 10),
                        emitter=lambda _: True)
    monitor = DriftMonitor(config, ctx)
    monitor.set_reference(profile)
    built = window(columns(*frame(rng, args.rows)))
    monitor.compute(built)  # warm-up: the reference is stacked once
    checks, series = [], []
    for _ in range(args.repeat):
        began = time.perf_counter()
        results = monitor.compute(built)
        checks.append(time.perf_counter() - began)
        assert results is not None
        began = time.perf_counter()
        ex.window_series(("m", "1", "bench"), results, ex.METHODS)
        series.append(time.perf_counter() - began)
    check, alone = statistics.median(checks), statistics.median(series)
    print(f"check, its series included: {check * 1000:.3f} ms; the series alone: "
          f"{alone * 1e6:.0f} us = {100 * alone / check:.1f}% of the check")


if __name__ == "__main__":
    main()
