"""The concept-drift alarm (`accuracy_gap`): false alarms on stable windows, and the smallest
window that still catches a gap of 0.2.

    .venv/bin/python bench/quality_gap.py                  # 2,000 stable windows per scenario
    .venv/bin/python bench/quality_gap.py --windows 5000 --seed 2

The real QualityMonitor (default thresholds) is calibrated on 6,000 labelled rows, then
judges windows whose rows are all labelled, 200 to 5,000 of them (log-uniform). Stable: the
labels keep following the scores, either as they are ("calibrated") or as score squared
("miscalibrated": the isotonic calibration has to correct them). Each window is judged
afresh (no hysteresis state carried), so the rate counts every window that would page. The
old rule (at least 1,000 labelled rows, gap above 0.05) is evaluated on the same windows.

Power: windows where a share of the rows turns against the prediction (the label becomes
the class not predicted), sized so the expected realized accuracy is 0.2 below the
estimate; the floor `min_samples` is set to 1 to find where the rule itself stops catching
it (the default floor is 100 labelled rows).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.window import Window
from plugins.quality.config import QualityConfig, Threshold
from plugins.quality.monitor import QualityMonitor

SCENARIOS = {"calibrated": lambda s: s, "miscalibrated": lambda s: s ** 2}


def scores(rng: np.random.Generator, n: int) -> np.ndarray:
    raw: np.ndarray = 1 / (1 + np.exp(-3 * rng.normal(0.3, 1, n)))
    return raw


def make(rng: np.random.Generator, n: int, truth: Any, start: float, gap: float = 0.0
         ) -> Window:
    raw = scores(rng, n)
    y_pred = (raw > 0.5).astype(np.int64)
    y = (rng.random(n) < truth(raw)).astype(np.int64)
    if gap:
        accuracy = float(np.mean(np.where(y_pred == 1, truth(raw), 1 - truth(raw))))
        turned = rng.random(n) < gap / accuracy  # these rows' labels turn against the model
        y = np.where(turned, 1 - y_pred, y)
    return Window(model="m", model_version="1", spec="1h", start=start, end=start + 3600,
                  task="classification", n=n, y_pred=y_pred, y_true=y, classes=("0", "1"),
                  positive=1, scores=np.column_stack([1 - raw, raw]), final=True)


def calibrated_monitor(root: Path, truth: Any, rng: np.random.Generator,
                       thresholds: dict[str, Threshold] | None = None) -> QualityMonitor:
    config = QualityConfig(enabled=True) if thresholds is None else QualityConfig(
        enabled=True, thresholds=thresholds)
    ctx = PluginContext(plugin="quality", config=config, host_id="bench", state_root=root,
                        metrics=PluginMetrics("quality", 100), emitter=lambda _: True)
    monitor = QualityMonitor(config, ctx)
    asyncio.run(monitor.process(make(rng, 6000, truth, 0.0)))
    assert monitor.calibrations[("m", "1")].fitted  # the bench's premise
    return monitor


def judge(monitor: QualityMonitor, window: Window) -> bool:
    monitor.degraded.clear()  # every window judged afresh
    events = asyncio.run(monitor.process(window))
    return any(e.attributes["metric"] == "accuracy_gap" for e in events)


def stable(root: Path, name: str, windows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    truth = SCENARIOS[name]
    monitor = calibrated_monitor(root / name, truth, rng)
    sizes = np.exp(rng.uniform(np.log(200), np.log(5000), windows)).astype(int)
    new = old = beyond = 0
    worst = 0.0
    for i, n in enumerate(sizes):
        window = make(rng, int(n), truth, 3600.0 * (i + 1))
        new += judge(monitor, window)
        gap = abs(window.results["estimation_gap"]["accuracy"])
        old += n >= 1000 and gap > 0.05
        error = window.results["estimation_gap_error"]["accuracy"]
        beyond += gap > error
        worst = max(worst, gap / error)
    return {"scenario": name, "windows": windows, "new": new, "old": old, "worst": worst,
            "beyond": beyond}


def power(root: Path, sizes: list[int], trials: int, seed: int) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    truth = SCENARIOS["miscalibrated"]
    floorless = {"accuracy_gap": Threshold(above=0.05, clear=0.03, min_samples=1)}
    monitor = calibrated_monitor(root / "power", truth, rng, floorless)
    return {n: float(np.mean([judge(monitor, make(rng, n, truth, 3600.0 * (t + 1), gap=0.2))
                              for t in range(trials)])) for n in sizes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        print("| stable scenario | windows | false alarms (gap rule) | old rule (>= 1,000 rows) "
              "| beyond 3 sigma alone (no 0.05 floor) | largest gap / its 3 sigma |\n"
              "|---|---|---|---|---|---|")
        for i, name in enumerate(SCENARIOS):
            found = stable(root, name, args.windows, args.seed + i)
            print(f"| {name} | {found['windows']:,} | {found['new']} "
                  f"({found['new'] / found['windows']:.2%}) | {found['old']} "
                  f"({found['old'] / found['windows']:.2%}) | {found['beyond']} "
                  f"({found['beyond'] / found['windows']:.2%}) | {found['worst']:.2f} |",
                  flush=True)
        sizes = [10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200]
        caught = power(root, sizes, args.trials, args.seed + 10)
        print("\n| labelled rows | 0.2 gap caught |\n|---|---|")
        for n, rate in caught.items():
            print(f"| {n} | {rate:.1%} |")
        smallest = {level: min((n for n, r in caught.items() if r >= level), default=None)
                    for level in (0.5, 0.95, 0.99)}
        print(f"\nsmallest window catching a 0.2 gap: {smallest} (default floor: 100 rows)")


if __name__ == "__main__":
    main()
