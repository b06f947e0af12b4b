"""The drift monitor's own cost per small window: `DriftMonitor.evaluate` on windows of a
few dozen to a few hundred rows, the part of a window's fixed cost that drift adds.

    .venv/bin/python bench/drift_window.py
    git archive 6274094 | tar -x -C /tmp/before      # an older tree, measured alike
    .venv/bin/python bench/drift_window.py --peer /tmp/before

The stream of bench/small_windows.py (18 uniform features, one normal, one categorical, a
binary model's score and prediction): a reference from its first 10,000 rows, then windows
of each size, each judged once with the CUSUM on (the first pass; the final pass reuses it).
CPU per window (process time, which a loaded machine disturbs less than the wall clock),
best of `--repeat` rounds; each tree runs in its own process, the trees interleaved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (25, 83, 200, 1000)

MEASURE = r'''
import json, math, sys, time
from pathlib import Path
import numpy as np
from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.window import Coded, Window
from plugins.drift.config import DriftConfig
from plugins.drift.monitor import DriftMonitor, drift_columns
from plugins.drift.profile import build

sizes, windows = json.loads(sys.argv[1])

def frame(rng, n):
    x = rng.normal(0, 1, n)
    p = 1 / (1 + np.exp(-2 * x))
    features = {f"f{k}": rng.random(n) for k in range(18)}
    features |= {"x": x, "c": np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)]}
    scores = np.column_stack([1 - p, p])
    return features, scores, (p > 0.5).astype(np.intp)

def window(rng, n, start):
    features, scores, y_pred = frame(rng, n)
    return Window(model="fraud", model_version="3", spec="1d", start=start, end=start + 86400,
                  task="classification", n=n, y_pred=y_pred, y_true=np.full(n, -1),
                  classes=("0", "1"), positive=1, scores=scores, features=features,
                  coded={"c": Coded.of(features["c"])})

rng = np.random.default_rng(1)
config = DriftConfig()
ctx = PluginContext(plugin="drift", config=config, host_id="h", state_root=Path("."),
                    metrics=PluginMetrics("drift", 1000), emitter=lambda _: True)
mon = DriftMonitor(config, ctx)
mon.set_reference(build(drift_columns(window(rng, 10_000, 0.0)), model="fraud",
                        model_version="3"))
out = {}
for size in sizes:
    batch = [window(rng, size, 86400.0 * (i + 1)) for i in range(windows)]
    best = math.inf
    for _ in range(2):  # the first round warms the caches
        mon.cusums.clear(); mon.read_until.clear()
        began = time.process_time()
        for w in batch:
            mon.commit(mon.evaluate(w))
        best = min(best, time.process_time() - began)
    out[size] = best / windows * 1000
print(json.dumps(out))
'''


def measure(tree: Path, windows: int) -> dict[str, float]:
    """CPU ms per window by size, in a fresh process run from the source tree `tree`."""
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([SIZES, windows])],
                          cwd=tree, capture_output=True, text=True, check=True)
    found: dict[str, float] = json.loads(done.stdout)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peer", type=Path, help="another source tree, measured alike")
    args = parser.parse_args()
    trees = {"this tree": ROOT} | ({f"peer: {args.peer}": args.peer} if args.peer else {})
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):  # interleaved: a slow phase of the machine hits both
        for name, tree in trees.items():
            found = measure(tree, args.windows)
            best[name] = {k: min(v, best.get(name, {}).get(k, v)) for k, v in found.items()}
    print(f"DriftMonitor.evaluate, CPU ms per window, best of {args.repeat} x {args.windows}"
          " windows\n")
    print("| tree | " + " | ".join(f"{s} rows" for s in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, found in best.items():
        print(f"| {name} | " + " | ".join(f"{found[str(s)]:.3f}" for s in SIZES) + " |")


if __name__ == "__main__":
    main()
