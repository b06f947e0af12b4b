"""What a running view costs: copying and building the open pane beside closing it for real.

    .venv/bin/python bench/running.py                 # a 20,000-row open window (the default cap)
    .venv/bin/python bench/running.py --rows 100000 --repeat 5

Every `running_every` (30 s) the window worker copies each open pane (on the loop: the lists
only) and builds the copy (in the worker); the quality monitor then computes its metrics.
The peer measured in the same run is the pane's own build when it closes, which every
window pays once anyway: the ratio says how much one running view adds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.model import Sample
from plugins.ingest import running
from plugins.ingest.windows import WindowStage

T0 = 1_800_000_000.0


def _stage(rows: int) -> WindowStage:
    stage = WindowStage({}, ["1h"], max_rows=rows, label_wait=60)
    samples = [Sample(model="m", request_id=f"r{i}", prediction=i % 2, score=(i % 10) / 10,
                      features={"amount": float(i), "country": "ABC"[i % 3], "age": i % 90})
               for i in range(rows)]
    stage.add_many(samples, T0 + 1)
    return stage


def _time(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    stage = _stage(args.rows)

    def loop_side() -> None:
        running.snapshot(stage)

    def view() -> None:
        copies = running.snapshot(stage)
        for copy in copies:
            copy.build()
        running.views(copies, T0 + 2)

    def close() -> None:  # the peer: the real pane's build, on a fresh stage each time
        fresh = _stage(args.rows)
        (pane,) = fresh.close_due(T0 + 3600)
        began = time.perf_counter()
        pane.build()
        close.seconds.append(time.perf_counter() - began)  # type: ignore[attr-defined]

    close.seconds = []  # type: ignore[attr-defined]
    snap, full = _time(loop_side, args.repeat), _time(view, args.repeat)
    for _ in range(args.repeat):
        close()
    build = statistics.median(close.seconds)  # type: ignore[attr-defined]
    print(f"{args.rows} rows: copy on the loop {snap * 1e3:.2f} ms; copy+build+assemble "
          f"{full * 1e3:.1f} ms; the pane's own build at close {build * 1e3:.1f} ms "
          f"(ratio {full / build:.2f})")


if __name__ == "__main__":
    main()
