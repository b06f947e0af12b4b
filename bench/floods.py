"""Floods of client-chosen names through the ingest pipeline, in process: bounded (the
defaults) beside the same pipeline with its bounds raised out of the way, in the same run.

    .venv/bin/python bench/floods.py

For each flood: the longest single step on the event loop (a label batch, a turn of window
assembly), or for groups and features the pane builds (in the worker thread), timed without
tracing; then, in a second run under tracemalloc, the Python memory the flood left.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.model import Label, Sample
from plugins.ingest.bounds import Limits
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.stage import STEP
from plugins.ingest.windows import WindowStage

NOW = 1_800_000_000.0
UNBOUNDED = Limits(max_models=1_000_000, max_versions=1_000_000, max_streams=1_000_000,
                   max_classes=1_000_000, max_groups=1_000_000)


def _stage(limits: Limits) -> tuple[Pipeline, WindowStage]:
    stage = WindowStage({}, ["200n"], label_wait=1.0, max_rows=20_000, limits=limits,
                        max_features=10_000 if limits is UNBOUNDED else 200)
    return Pipeline({}, stage, lambda _: None), stage


def _timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def models(limits: Limits) -> tuple[float, object]:
    """50,000 models, then a batch of 5,000 labels for 5,000 of them."""
    pipeline, _ = _stage(limits)
    for i in range(0, 50_000, 1000):
        pipeline.offer_many([Sample(model=f"m{j}", request_id="r", prediction=1)
                             for j in range(i, i + 1000)], NOW)
    labels: list[Sample | Label] = [Label(model=f"m{j}", request_id="x", label=1)
                                    for j in range(0, 50_000, 10)]
    return _timed(lambda: pipeline.offer_many(labels, NOW)), pipeline


def classes(limits: Limits) -> tuple[float, object]:
    """20,000 distinct predictions in 100 windows of 200; the longest window tick."""
    pipeline, stage = _stage(limits)
    worst = 0.0
    for i in range(0, 20_000, 200):
        pipeline.offer_many([Sample(model="llm", request_id=f"r{j}", prediction=f"text {j}")
                             for j in range(i, i + 200)], NOW)
        due = stage.close_due(NOW)
        for pane in due:
            pane.build()
        worst = max(worst, _timed(lambda due=due: stage.retire(due[:STEP], NOW, STEP)))
    return worst, stage


def groups(limits: Limits) -> tuple[float, object]:
    pipeline, stage = _stage(limits)
    for i in range(0, 20_000, 200):
        pipeline.offer_many([Sample(model="fair", request_id=f"r{j}", prediction=j % 2,
                                    group=f"person {j}") for j in range(i, i + 200)], NOW)
    return _timed(lambda: [p.build() for p in stage.close_due(NOW)]), stage


def features(limits: Limits) -> tuple[float, object]:
    pipeline, stage = _stage(limits)
    for i in range(0, 10_000, 200):
        pipeline.offer_many([Sample(model="wide", request_id=f"r{j}", prediction=1,
                                    features={f"f{j}_{k}": k for k in range(5)})
                             for j in range(i, i + 200)], NOW)
    return _timed(lambda: [p.build() for p in stage.close_due(NOW)]), stage


def main() -> None:
    print("| flood | limits | step ms | Python memory MiB |")
    print("|---|---|---|---|")
    for flood in (models, classes, groups, features):
        for name, limits in (("defaults", Limits()), ("raised", UNBOUNDED)):
            seconds, alive = flood(limits)
            del alive
            tracemalloc.start()
            _, alive = flood(limits)
            memory = tracemalloc.get_traced_memory()[0] / (1 << 20)
            tracemalloc.stop()
            del alive
            print(f"| {flood.__name__} | {name} | {seconds * 1000:.1f} | {memory:.1f} |")


if __name__ == "__main__":
    main()
