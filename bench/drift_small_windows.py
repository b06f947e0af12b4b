"""The drift monitor's cost per small window, measured inside `inferwatch replay` (#12 item 7).

    .venv/bin/python bench/drift_small_windows.py                   # this tree
    git archive main | tar -x -C /tmp/before
    .venv/bin/python bench/drift_small_windows.py --peer /tmp/before --repeat 3
    .venv/bin/python bench/drift_small_windows.py --peer /tmp/before --window 7d --days 17

The stream of bench/small_windows.py (50,000 samples over 600 days, 20 features: 18 uniform,
one normal, one categorical; a score; every other sample labelled) replays with `--window
100n` and every built-in monitor on. The CPU time of each window's passes through the drift
monitor (`process`: the first pass evaluates, the final one reuses its results) is taken once
its reference is captured, and the last 300 windows are averaged (`--window 7d --days 17`:
the same samples over 17 days, windows of ~20,600 rows); "in a loop" then runs
`evaluate` again over those windows back to back (warm caches: the arithmetic alone). Each
tree runs in its own process, trees alternating, best of `--repeat`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAIL = 300  # windows averaged, after the reference is captured


def measure(samples: Path, labels: Path, spec: str = "100n") -> dict[str, float]:
    """One replay in this process (the tree on sys.path first), timed per drift pass."""
    from agent.cli import main  # noqa: PLC0415 - from the tree under test
    from plugins.drift.monitor import DriftMonitor  # noqa: PLC0415
    from plugins.ingest import replay  # noqa: PLC0415

    passes: dict[bool, list[float]] = {False: [], True: []}
    evaluated: list[float] = []
    kept: list[Any] = []
    monitors: list[DriftMonitor] = []
    original, evaluate = replay.process_window, DriftMonitor.evaluate

    async def timed_pass(monitor: Any, window: Any) -> Any:
        if not isinstance(monitor, DriftMonitor):
            return await original(monitor, window)
        began = time.process_time()
        found = await original(monitor, window)
        passes[window.final].append(time.process_time() - began)
        if not window.final and window.results.get("drift"):
            kept.append(window)
            monitors[:] = [monitor]
        return found

    def timed_evaluate(self: DriftMonitor, window: Any) -> Any:
        began = time.process_time()
        found = evaluate(self, window)
        evaluated.append(time.process_time() - began)
        return found

    replay.process_window = timed_pass  # type: ignore[assignment]
    DriftMonitor.evaluate = timed_evaluate  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["replay", "--samples", str(samples), "--labels", str(labels), "--window", spec])
    DriftMonitor.evaluate = evaluate  # type: ignore[method-assign]
    monitor, windows = monitors[0], kept[-TAIL:]
    began = time.process_time()
    for window in windows:
        monitor.read_until.clear()  # the CUSUM step too, as in the replay
        monitor.evaluate(window)
    loop = (time.process_time() - began) / len(windows)
    first, final = passes[False][-TAIL:], passes[True][-TAIL:]
    return {"first pass": sum(first) / len(first) * 1e6,
            "final pass": sum(final) / len(final) * 1e6,
            "both passes": (sum(first) / len(first) + sum(final) / len(final)) * 1e6,
            "evaluate": sum(evaluated[-TAIL:]) / len(evaluated[-TAIL:]) * 1e6,
            "evaluate, in a loop": loop * 1e6}


def run(tree: Path, samples: Path, labels: Path, spec: str) -> dict[str, float]:
    """measure() in a fresh process that imports the source tree `tree`."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(samples), str(labels),
         "--window", spec],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
        text=True, check=True)
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", type=Path, help="another source tree, measured alike")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", default="100n", help="the window spec replayed")
    parser.add_argument("--days", type=int, default=600, help="the days the stream spans")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(Path.cwd()))
        print(json.dumps(measure(*args.child, args.window)))
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from small_windows import make_stream  # noqa: PLC0415

    trees = {"this tree": ROOT} | ({f"peer: {args.peer}": args.peer} if args.peer else {})
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        samples, labels = make_stream(Path(folder), 50_000, args.days)
        for _ in range(args.repeat):
            for name, tree in trees.items():
                found = run(tree, samples, labels, args.window)
                best[name] = {k: min(v, best.get(name, found)[k]) for k, v in found.items()}
    print(f"drift monitor, --window {args.window}, us of CPU per window (best of {args.repeat})"
          "\n")
    keys = list(next(iter(best.values())))
    print("| tree | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, found in best.items():
        print(f"| {name} | " + " | ".join(f"{found[k]:.0f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
