"""Monitors own their metrics: a monitor computes its series with the window (in its worker
thread), puts them in `self.exports` on the event loop, and the supervisor publishes them in
the plugin's store; no collector reads the monitor's state. The drift and quality monitors'
series carry exactly the values of the results replay prints."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk

from agent.components import Monitor
from agent.metrics import Accumulator, Labels, MetricDef, gauge
from agent.model import Event
from agent.window import Window
from plugins.drift import metrics as dm
from plugins.drift.profile import Profile
from plugins.quality import metrics as qm
from tests.plugins.test_drift import frame, reference, window  # noqa: F401 - a fixture
from tests.plugins.test_drift import monitor as drift_monitor
from tests.plugins.test_quality import monitor as quality_monitor
from tests.plugins.test_quality import window as quality_window
from tests.unit.test_supervisor import Env, _until, env  # noqa: F401 - a fixture

ROWS = gauge("inferwatch_test_rows", "Rows of the latest window per model.", "model")


class Rows(Monitor):
    """A monitor in miniature: rows per model, counted in a worker thread."""

    def __init__(self) -> None:
        super().__init__("c")
        self.threads: set[int] = set()

    def _series(self, window: Window) -> Accumulator:
        self.threads.add(threading.get_ident())
        out = Accumulator()
        out.add(ROWS, window.rows, model=window.model)
        return out

    async def process(self, window: Window) -> Sequence[Event]:
        series = await asyncio.to_thread(self._series, window)
        self.exports.put(window.model, series)  # on the loop, where the state is committed
        return []


def _window(model: str, n: int) -> Window:
    return Window(model=model, model_version="", spec="1m", start=0, end=60,
                  task="regression", n=n, y_pred=np.zeros(n), y_true=np.full(n, np.nan))


def _values(items: list[tuple[MetricDef, dict[Labels, float]]], metric: MetricDef
            ) -> dict[Labels, float]:
    return {k: v for m, values in items if m == metric for k, v in values.items()}


async def test_the_supervisor_publishes_what_a_monitor_committed(env: Env) -> None:  # noqa: F811
    monitor = Rows()
    sup = env.supervise(monitor)
    sup.launch()
    await sup.started.wait()
    assert sup.inbox is not None
    for model, n in (("a", 3), ("b", 5), ("a", 7)):
        await sup.inbox.put(_window(model, n))
    await _until(lambda: _values(env.store.items(), ROWS) == {("a",): 7.0, ("b",): 5.0})
    assert threading.get_ident() not in monitor.threads  # computed off the loop
    await sup.stop(1)
    assert env.store.items() == []  # a stopped monitor leaves no series behind


async def test_a_monitors_series_count_against_the_plugins_budget(env: Env) -> None:  # noqa: F811
    monitor = Rows()
    sup = env.supervise(monitor)
    env.store.limit = 2
    sup.launch()
    await sup.started.wait()
    assert sup.inbox is not None
    for model in "abc":
        await sup.inbox.put(_window(model, 1))
    await _until(lambda: env.store.refused_total >= 1)
    assert len(_values(env.store.items(), ROWS)) == 2
    await sup.stop(1)


async def test_drift_exports_the_values_of_its_results(tmp_path: Path,
                                                       reference: Profile) -> None:  # noqa: F811
    mon = drift_monitor(tmp_path, reference)
    w = window(frame(np.random.default_rng(3), 5000, shift=0.5))
    await mon.process(w)
    found, series = w.results["drift"], mon.exports.merged().series
    key = ("m", "1", "1h")
    for feature, verdict in found["features"].items():
        for method in ("wasserstein", "ks", "psi", "js", "tvd", "chi2", "unseen_rate"):
            if method in verdict:
                assert series[dm.SCORE][(*key, feature, method)] == verdict[method]
        assert series[dm.THRESHOLD][(*key, feature)] == verdict["threshold"]
        assert series[dm.FEATURE_DRIFTED][(*key, feature)] == float(verdict["drifted"])
    top = found["top"][0]
    assert series[dm.TOP][(*key, "1", top["feature"])] == top["score"] / top["threshold"]
    assert series[dm.DETECTED][key] == float(found["declared"])
    assert series[dm.REFERENCE][("m", "1")] == reference.count
    assert series[dm.BUDGET][("window",)] == mon.config.false_alarm_rate


@pytest.mark.parametrize("final", [False, True])
async def test_quality_exports_the_values_of_its_results(tmp_path: Path, final: bool) -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 400).tolist()
    yp = [v if rng.random() < 0.8 else 1 - v for v in y]
    mon = quality_monitor(tmp_path)
    await mon.process(quality_window(y, yp, final=final))
    series = mon.exports.merged().series
    key = ("m", "1", "1h")
    assert series[qm.ACCURACY][key] == pytest.approx(sk.accuracy_score(y, yp), abs=1e-12)
    assert series[qm.F1][(*key, "1")] == pytest.approx(sk.f1_score(y, yp), abs=1e-12)
    assert series[qm.SAMPLES][key] == 400
    assert series[qm.WINDOW_FINAL][key] == float(final)
    assert series[qm.MONITOR_SECONDS][()] == mon.compute_seconds > 0


class NoInit(Monitor):
    """A third-party monitor that never calls Monitor.__init__ (it sets its name itself)."""

    def __init__(self) -> None:  # no super().__init__(): on purpose
        self.name = "c"

    async def process(self, window: Window) -> Sequence[Event]:
        out = Accumulator()
        out.add(ROWS, window.rows, model=window.model)
        self.exports.put(window.model, out)
        return []


async def test_a_monitor_that_skips_our_init_still_exports(env: Env) -> None:  # noqa: F811
    sup = env.supervise(NoInit())
    sup.launch()
    await sup.started.wait()
    assert sup.inbox is not None
    await sup.inbox.put(_window("a", 4))
    await _until(lambda: _values(env.store.items(), ROWS) == {("a",): 4.0})
    await sup.stop(1)


async def test_monitors_build_no_window_series_where_none_are_wanted(
        tmp_path: Path, reference: Profile) -> None:  # noqa: F811
    """Replay (no exporter) turns `wanted` off: the same results, no per-window series."""
    rng = np.random.default_rng(3)
    built, skipped = drift_monitor(tmp_path / "a", reference), drift_monitor(tmp_path / "b",
                                                                            reference)
    skipped.exports.wanted = False
    w1, w2 = window(frame(rng, 500, shift=0.5)), None
    w2 = Window(**{**w1.__dict__, "results": {}})
    await built.process(w1)
    await skipped.process(w2)
    assert w1.results == w2.results
    assert dm.SCORE in built.exports.merged().series
    assert dm.SCORE not in skipped.exports.merged().series
    quality = quality_monitor(tmp_path / "q")
    quality.exports.wanted = False
    q = quality_window([0, 1, 1, 0], [0, 1, 0, 0], final=True)
    await quality.process(q)
    assert q.results["metrics"]["accuracy"] == 0.75
    assert qm.ACCURACY not in quality.exports.merged().series
