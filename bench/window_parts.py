"""Where a small window's time goes inside `inferwatch replay`, in one process: each part's
time per window (perf_counter around it), the best of `--runs` replays.

    .venv/bin/python bench/window_parts.py                          # 100n, 50,000 samples
    .venv/bin/python bench/window_parts.py --window 7d
    cd /tmp/base && PYTHONPATH=. /work/main/.venv/bin/python /work/main/bench/window_parts.py

Parts: each monitor's first (`.1st`) and final (`.fin`) pass, the window stage (`stage`,
which holds the pane build `build` and the window's assembly `assemble`), the window line's
dict (`line`) and its JSON (`print`); `total` is the replay's CPU time. The stream is
bench/small_windows.py's (20 features, a binary score, every other sample labelled). Run
from another tree with PYTHONPATH=<tree> to compare: the parts wrapped are found by name.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_windows import make_stream  # the bench folder is not a package

TIMES: Counter[str] = Counter()


def timed(owner: Any, name: str, part: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMES[part] += time.perf_counter() - began

    setattr(owner, name, wrapper)


def instrument() -> None:
    from plugins.ingest import replay, windows  # noqa: PLC0415 - after sys.path is set

    process = replay.process_window

    async def per_pass(monitor: Any, window: Any) -> Any:
        began = time.perf_counter()
        try:
            return await process(monitor, window)
        finally:
            part = type(monitor).__name__.removesuffix("Monitor").lower()
            TIMES[f"{part}.{'fin' if window.final else '1st'}"] += time.perf_counter() - began

    replay.process_window = per_pass  # type: ignore[assignment]
    timed(windows.WindowStage, "advance", "stage")
    timed(windows.Pane, "build", "build")
    timed(windows.WindowStage, "_window", "assemble")
    timed(replay, "window_line", "line")
    if hasattr(replay, "Lines"):
        timed(replay.Lines, "encode", "print")
    else:  # an older tree
        timed(replay.Replay, "_print", "print")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--days", type=float, default=600.0)
    parser.add_argument("--window", default="100n")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    instrument()
    from agent.cli import main as cli  # noqa: PLC0415

    best: dict[str, float] = {}
    lines = 0
    with tempfile.TemporaryDirectory() as folder:
        samples, labels = make_stream(Path(folder), args.samples, args.days)
        for _ in range(args.runs):
            TIMES.clear()
            out = io.StringIO()
            began = time.process_time()
            with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()),
                  contextlib.suppress(SystemExit)):
                cli(["replay", "--samples", str(samples), "--labels", str(labels),
                     "--window", args.window])
            TIMES["total"] = time.process_time() - began
            lines = out.getvalue().count('"type":"window"')
            for part, seconds in TIMES.items():
                best[part] = min(best.get(part, seconds), seconds)
    windows = max(1, lines // 2)  # each window twice: not final, then final
    print(f"{args.samples:,} samples, --window {args.window}: {windows:,} windows; "
          f"microseconds per window, best of {args.runs}")
    print(" ".join(f"{part}={seconds / windows * 1e6:.0f}"
                   for part, seconds in sorted(best.items())))


if __name__ == "__main__":
    main()
