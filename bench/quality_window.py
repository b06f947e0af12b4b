"""The quality monitor's share of a small window: CPU per pass, and the same results.

    .venv/bin/python bench/quality_window.py                          # this tree
    git archive 9f75dae | tar -x -C /tmp/before                       # a tree before
    .venv/bin/python bench/quality_window.py --peer /tmp/before --repeat 5
    .venv/bin/python bench/quality_window.py --peer /tmp/before --window 100n

Every window a `--window 1d` replay of the `small_windows.py` stream hands the quality
monitor (both passes, not final then final: 1,202 of them for 50,000 samples) is captured
once, then put through `process_window` by a fresh monitor of each tree, in its own process,
the trees alternating: CPU per pass (best of `--repeat`), and whether every pass's results,
exported series and events are the same in both trees (they must be: equal bits).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def capture(samples: Path, labels: Path, out: Path, state: Path, spec: str = "1d") -> None:
    """In this process (this tree): the windows the quality monitor receives, pickled."""
    import plugins.quality.monitor as qm  # noqa: PLC0415 - imported from the tree run
    from agent.cli import main  # noqa: PLC0415

    seen: list[Any] = []
    process = qm.QualityMonitor.process

    async def keep(self: qm.QualityMonitor, window: Any) -> Any:
        seen.append(dataclasses.replace(window, results={}))
        return await process(self, window)

    qm.QualityMonitor.process = keep  # type: ignore[method-assign]
    config = state / "quality.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n[plugins.ingest]\nenabled = true\n'
                      "[plugins.quality]\nenabled = true\n[plugins.drift]\nenabled = false\n")
    sys.argv = ["inferwatch", "replay", "--samples", str(samples), "--labels", str(labels),
                "--window", spec, "-c", str(config)]
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115, PTH123
    try:
        main()
    except SystemExit:
        pass
    finally:
        sys.stdout = stdout
    out.write_bytes(pickle.dumps(seen))


def passes(windows: Path, out: Path, repeat: int) -> None:
    """In this process (the tree given by the working directory): CPU per pass, and each
    pass's results, series and events, pickled to `out`."""
    from agent.components import process_window  # noqa: PLC0415
    from agent.context import PluginContext  # noqa: PLC0415
    from agent.metrics import PluginMetrics  # noqa: PLC0415
    from plugins.quality.config import QualityConfig  # noqa: PLC0415
    from plugins.quality.monitor import QualityMonitor  # noqa: PLC0415

    captured = pickle.loads(windows.read_bytes())  # noqa: S301 - written by this script

    async def run(record: list[Any] | None) -> float:
        with tempfile.TemporaryDirectory() as root:
            settings = QualityConfig(window_events=False)  # as replay runs it
            ctx = PluginContext(plugin="quality", config=settings, host_id="h",
                                state_root=Path(root), metrics=PluginMetrics("quality", 10**6),
                                emitter=lambda _: True)
            monitor, spent = QualityMonitor(settings, ctx), 0.0
            for window in captured:
                window = dataclasses.replace(window, results={})  # noqa: PLW2901
                began = time.thread_time()
                events = await process_window(monitor, window)
                spent += time.thread_time() - began
                if record is not None:
                    series = {(metric.name, key): value for metric, table in
                              monitor.exports.merged().series.items()
                              for key, value in table.items() if "compute_seconds" not in
                              metric.name}
                    record.append((window.results, series,
                                   [(e.kind, e.attributes, e.data) for e in events]))
            return spent

    best = min(asyncio.run(run(None)) for _ in range(repeat))
    record: list[Any] = []
    asyncio.run(run(record))
    out.write_bytes(pickle.dumps((best / len(captured), record)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the trees")
    parser.add_argument("--peer", type=Path, help="another source tree, measured alike")
    parser.add_argument("--window", default="1d", help="the replay's windows (1d, 100n, ...)")
    parser.add_argument("--_capture", nargs=4, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_passes", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._capture:
        sys.path.insert(0, str(Path.cwd()))
        capture(*args._capture, spec=args.window)
        return
    if args._passes:
        sys.path.insert(0, str(Path.cwd()))
        passes(*args._passes, args.repeat)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from small_windows import make_stream  # noqa: PLC0415

    trees = {"this tree": ROOT} | ({f"peer: {args.peer}": args.peer} if args.peer else {})
    me = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        samples, labels = make_stream(base, args.samples, 600.0)
        windows = base / "windows.pickle"
        subprocess.run([sys.executable, me, "--window", args.window, "--_capture",
                        str(samples), str(labels), str(windows), str(base)], cwd=ROOT, check=True,
                       stderr=subprocess.DEVNULL)
        best: dict[str, float] = {}
        found: dict[str, Any] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                out = base / "passes.pickle"
                subprocess.run([sys.executable, me, "--repeat", str(args.repeat), "--_passes",
                                str(windows), str(out)], cwd=tree, check=True)
                per_pass, found[name] = pickle.loads(out.read_bytes())  # noqa: S301
                best[name] = min(per_pass, best.get(name, per_pass))
    count = len(next(iter(found.values())))
    print(f"{count:,} window passes (a `{args.window}` replay of {args.samples:,} samples), "
          f"best of {args.rounds} x {args.repeat}")
    for name, per_pass in best.items():
        print(f"  {name}: {per_pass * 1e3:.3f} ms CPU per pass")
    if args.peer:
        mine, theirs = found["this tree"], found[f"peer: {args.peer}"]
        same = len(mine) == len(theirs) and all(
            repr(a[0]) == repr(b[0]) and a[1] == b[1] and repr(a[2]) == repr(b[2])
            for a, b in zip(mine, theirs, strict=True))
        print(f"  results, series and events identical in both trees: {same}")


if __name__ == "__main__":
    main()
