"""Running views of open windows: provisional, clearly marked, and the open pane untouched."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score

from agent.model import Label
from plugins.ingest import running
from plugins.ingest.windows import WindowStage
from plugins.quality.monitor import QualityMonitor
from tests.plugins.test_ingest_windows import T0, sample


def _views(stage: WindowStage, now: float) -> list:
    copies = running.snapshot(stage)
    for copy in copies:
        copy.build()
    return running.views(copies, now)


def _label(stage: WindowStage, i: int, value: int) -> None:
    stage.label(sample(i), Label(model="m", request_id=f"r{i}", label=value))


def test_a_running_view_of_the_open_hour_leaves_it_as_it_was() -> None:
    stage = WindowStage({}, ["1h"], label_wait=60)
    for i in range(100):
        stage.add(sample(i), T0 + i, T0 + i)
    for i in range(0, 100, 2):
        _label(stage, i, 1 - i % 2 if i % 4 else i % 2)  # half of the labelled ones right
    (view,) = _views(stage, T0 + 120)
    assert (view.spec, view.provisional, view.final) == ("1h:running", True, False)
    assert (view.start, view.end, view.n, int(view.labeled.sum())) == (T0, T0 + 120, 100, 50)
    assert view.features["x"].tolist() == [float(i) for i in range(100)]
    for i in range(100, 150):
        stage.add(sample(i), T0 + i, T0 + i)
    (again,) = _views(stage, T0 + 200)
    assert again.n == 150, "the open pane kept its rows and goes on growing"
    (closed,) = stage.advance(T0 + 3600)  # the hour closes as if nothing had happened
    assert (closed.spec, closed.provisional, closed.n, int(closed.labeled.sum())) == (
        "1h", False, 150, 50)


def test_a_sliding_running_view_spans_its_closed_panes() -> None:
    stage = WindowStage({}, ["30m/10m"], label_wait=0)
    for i in range(40):  # one sample a minute from 00:00
        stage.advance(T0 + 60 * i)
        stage.add(sample(i), T0 + 60 * i, T0 + 60 * i)
    stage.advance(T0 + 60 * 39 + 1)
    (view,) = _views(stage, T0 + 60 * 39 + 1)
    assert view.spec == "30m/10m:running"
    assert view.start == T0 + 10 * 60  # two closed panes (00:10-00:30) and the open one
    assert view.n == 30
    assert view.features["x"].tolist() == [float(i) for i in range(10, 40)]


def test_no_rows_no_view() -> None:
    assert _views(WindowStage({}, ["1h"]), T0) == []


async def test_quality_exports_a_view_and_judges_none(tmp_path) -> None:
    from agent.config import build_config  # noqa: PLC0415
    from plugins.quality.config import QualityConfig  # noqa: PLC0415

    config = build_config({"plugins": {"quality": {"thresholds": {"accuracy": {
        "below": 0.99, "min_samples": 10}}}}}, {"quality": QualityConfig}).plugins["quality"]
    monitor = QualityMonitor(config, _Ctx(tmp_path))  # type: ignore[arg-type]
    stage = WindowStage({}, ["1h"], label_wait=60)
    for i in range(200):
        stage.add(sample(i), T0 + i, T0 + i)
        _label(stage, i, i % 3 % 2)
    (view,) = _views(stage, T0 + 300)
    assert await monitor.process(view) == [], "a running view raises no event"
    mask = view.labeled
    expected = accuracy_score(view.y_true[mask], view.y_pred[mask])
    assert np.isclose(view.results["metrics"]["accuracy"], expected)
    assert ("m", "", "1h:running") in monitor.latest


class _Ctx:
    def __init__(self, root) -> None:
        self.root = root

    def state_file(self, prefix: str, ident: object) -> object:
        return self.root / f"{prefix}.json"

    def event(self, kind: str, **kw: object) -> object:
        return (kind, kw)
