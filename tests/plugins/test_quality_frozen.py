"""The live quality monitor gives what it gave at 60fdd8e (tests/plugins/quality_frozen), bit
for bit: every float's bits, every key in the same order, every type, every event. Both run
side by side over the same sequence of windows (first passes, final passes, running views),
so what one pass hands the next (the first pass, the calibration learnt meanwhile) is
compared too: binary with either positive class or none, multiclass, ties in the scores,
scores missing on some rows or all, rows of zeros, labels on all, some or no rows (and
coming only after the first pass), one class only, groups, a cost matrix, regression."""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.model import Event
from agent.window import Window
from plugins.quality.cbpe import Calibration, estimate
from plugins.quality.classification import Ranked, classification, probabilities
from plugins.quality.config import Cost, ModelQuality, QualityConfig, Threshold
from plugins.quality.monitor import QualityMonitor
from tests.bits import same
from tests.plugins.quality_frozen import cbpe as old_cbpe
from tests.plugins.quality_frozen import classification as old_classification
from tests.plugins.quality_frozen.monitor import QualityMonitor as FrozenMonitor


def same_events(got: list[Event], want: list[Event]) -> None:
    assert [e.kind for e in got] == [e.kind for e in want]
    for g, w in zip(got, want, strict=True):
        same((g.severity, g.attributes, g.data), (w.severity, w.attributes, w.data), g.kind)


def _monitor(kind: type, root: Path, config: QualityConfig) -> Any:
    ctx = PluginContext(plugin="quality", config=config, host_id="h", state_root=root,
                        metrics=PluginMetrics("quality", 100), emitter=lambda _: True)
    return kind(config, ctx)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    k = draw(st.sampled_from([2, 2, 2, 3, 4]))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "k": k,
        "positive": draw(st.sampled_from([1, 1, 0, -1])) if k == 2 else -1,
        "windows": draw(st.integers(1, 7)),
        "rows": draw(st.sampled_from([0, 1, 2, 5, 40, 100, 130])),
        "ties": draw(st.sampled_from([0, 0, 1, 2])),
        "scores": draw(st.sampled_from(["ok", "ok", "ok", "nan_row", "nan_one", "zeros",
                                        "none", "wide", "inf_one", "negative"])),
        "labels": draw(st.sampled_from(["half", "half", "all", "none_then_all", "none",
                                        "more_later", "one_class"])),
        "shared": draw(st.sampled_from(["same", "same", "copy", "changed", "no_first"])),
        "lag": draw(st.integers(0, 2)),
        "groups": draw(st.booleans()),
        "cost": draw(st.sampled_from([None, "binary", "matrix"])),
        "thresholds": draw(st.booleans()),
        "running": draw(st.booleans()),
    }


def _scores(rng: np.random.Generator, case: dict[str, Any], n: int) -> np.ndarray | None:
    k = case["k"]
    if case["scores"] == "none":
        return None
    scores = rng.dirichlet(np.ones(k), n) if n else np.zeros((0, k))
    if case["ties"]:
        scores = np.round(scores, case["ties"])
    if n and case["scores"] == "nan_row":
        scores[rng.integers(0, n)] = np.nan
    elif n and case["scores"] == "nan_one":
        scores[rng.integers(0, n), rng.integers(0, k)] = np.nan
    elif n and case["scores"] == "zeros":
        scores[rng.integers(0, n)] = 0.0
    elif n and case["scores"] == "inf_one":  # inf / inf: a NaN probability
        scores[rng.integers(0, n), rng.integers(0, k)] = np.inf
    elif case["scores"] == "wide":  # not probabilities: normalised per row
        scores = scores * rng.choice([0.5, 3.0, 1e-300], size=(n, 1))
    elif case["scores"] == "negative":  # raw margins: normalised, some below 0, some -0.0
        scores = np.where(scores < 0.2, -scores, scores) + rng.choice([0.0, 0.5], size=(n, 1))
        scores[scores == 0.0] = -0.0
    return scores


def _labels(rng: np.random.Generator, case: dict[str, Any], truth: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The label column at the first pass and at the final one (-1: no label yet)."""
    n, none = len(truth), np.full(len(truth), -1, dtype=truth.dtype)
    some = np.where(rng.random(n) < 0.5, truth, -1)
    kind = case["labels"]
    if kind == "all":
        return truth.copy(), truth.copy()
    if kind == "none_then_all":
        return none, truth.copy()
    if kind == "none":
        return none, none.copy()
    if kind == "more_later":
        return some, np.where(rng.random(n) < 0.8, truth, -1)
    if kind == "one_class":
        one = np.where(some >= 0, 0, -1)
        return one, one.copy()
    return some, some.copy()


def _windows(case: dict[str, Any]) -> list[tuple[Window, Window]]:
    """Each window's first and final pass, as ingest builds them (shared, read-only arrays)."""
    rng = np.random.default_rng(case["seed"])
    k = case["k"]
    classes = tuple(f"c{i}" for i in range(k))
    out = []
    for i in range(case["windows"]):
        n = case["rows"] if i % 3 else max(case["rows"], 60)  # enough labels to calibrate
        scores = _scores(rng, case, n)
        if scores is not None and n:
            clean = np.abs(np.nan_to_num(scores, posinf=1.0))
            y_pred = clean.argmax(axis=1)  # ingest codes every prediction: never -1
            truth = np.array([rng.choice(k, p=r / r.sum()) if r.sum() > 0 else 0
                              for r in clean]) if n else np.zeros(0, np.intp)
        else:
            y_pred = rng.integers(0, k, n)
            truth = rng.integers(0, k, n)
        y_pred, truth = y_pred.astype(np.intp), truth.astype(np.intp)
        if scores is not None:
            scores.flags.writeable = False
        first_y, final_y = _labels(rng, case, truth)
        group = rng.choice(np.array(["a", "b", None], dtype=object), n) if case["groups"] \
            else None
        first = Window(model="m", model_version="1", spec="100n", start=float(i * 100),
                       end=float(i * 100 + 99), task="classification", n=n + 2, y_pred=y_pred,
                       y_true=first_y, classes=classes, positive=case["positive"],
                       scores=scores, group=group, final=False)
        final_scores = scores
        if case["shared"] == "copy" and scores is not None:
            final_scores = scores.copy()
        elif case["shared"] == "changed" and scores is not None:
            final_scores = scores[::-1].copy()
        final = Window(model="m", model_version="1", spec="100n", start=first.start,
                       end=first.end, task="classification", n=n + 2, y_pred=y_pred,
                       y_true=final_y, classes=classes, positive=case["positive"],
                       scores=final_scores, group=group, final=True)
        out.append((first, final))
    return out


def _config(case: dict[str, Any]) -> QualityConfig:
    cost = None
    if case["cost"] == "binary":
        cost = Cost(tp=-1.5, fp=2.0, fn=7.25, tn=0.0)
    elif case["cost"] == "matrix":
        names = [f"c{i}" for i in range(case["k"])]
        cost = Cost(classes=names, matrix=[[float(i != j) * (i + 1) for j in range(len(names))]
                                           for i in range(len(names))])
    thresholds = {"accuracy_gap": Threshold(above=0.05, clear=0.03, min_samples=1)}
    if case["thresholds"]:
        thresholds |= {"accuracy": Threshold(below=0.9, min_samples=1),
                       "estimated_f1": Threshold(below=0.8, min_samples=1),
                       "ece": Threshold(above=0.05, min_samples=1)}
    return QualityConfig(thresholds=thresholds, reference_samples=100, min_group_size=3,
                         models={"m": ModelQuality(cost=cost)})


def _schedule(case: dict[str, Any], windows: list[tuple[Window, Window]]) -> list[Window]:
    """First passes in order; each final pass `lag` windows later (a calibration may be
    learnt between a window's two passes); `no_first`: final passes alone."""
    passes: list[Window] = []
    pending: list[Window] = []
    for first, final in windows:
        if case["shared"] != "no_first":
            passes.append(first)
        pending.append(final)
        if len(pending) > case["lag"]:
            passes.append(pending.pop(0))
    return passes + pending


def _copy(window: Window) -> Window:
    """The same window for the other monitor: its own dicts, the same arrays."""
    return Window(**{**window.__dict__, "results": {}, "quality": dict(window.quality)})


def run_both(case: dict[str, Any], passes: list[Window], root: Path) -> None:
    config = _config(case)
    live = _monitor(QualityMonitor, root / "live", config)
    frozen = _monitor(FrozenMonitor, root / "frozen", config)
    for i, window in enumerate(passes):
        views = [window]
        if case["running"] and not window.final:
            views = [_copy(window), window]
            views[0].provisional, views[0].spec = True, window.spec + ":running"
        for view in views:
            mine, theirs = _copy(view), _copy(view)
            computed = _outcome(live.compute, _copy(view))
            same(computed, _outcome(frozen.compute, _copy(view)), f"compute {i}")
            if isinstance(computed, str):  # both failed alike (raw scores outside [0, 1])
                return
            got = asyncio.run(live.process(mine))
            want = asyncio.run(frozen.process(theirs))
            same(mine.results, theirs.results, f"pass {i} final={view.final}")
            same_events(list(got), list(want))
    same(live.cost_total, frozen.cost_total)
    same(live.degraded, frozen.degraded)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_live_monitor_is_the_frozen_one_bit_for_bit(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as root, np.errstate(all="ignore"):  # inf / inf
        run_both(case, _schedule(case, _windows(case)), Path(root))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 120), st.booleans())
def test_regression_windows_are_untouched(seed: int, n: int, final: bool) -> None:
    rng = np.random.default_rng(seed)
    y_true = np.where(rng.random(n) < 0.6, rng.normal(size=n), math.nan)
    window = Window(model="r", model_version="1", spec="1d", start=0.0, end=1.0,
                    task="regression", n=n, y_pred=rng.normal(size=n), y_true=y_true,
                    final=final)
    with tempfile.TemporaryDirectory() as root:
        run_both({"running": False, "k": 2, "cost": None, "thresholds": True},
                 [window], Path(root))


# -- the pieces, on sizes past Ranked's SORT_ROWS, and on any scores ------------------------

SCORES = st.sampled_from(["unit", "ties", "negative", "signed_zero", "nan", "wide"])


def _piece_data(seed: int, n: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if kind == "ties":
        p = np.round(p, 1)
    elif kind == "negative":
        p = p - 0.5
    elif kind == "signed_zero":
        p = np.where(rng.random(n) < 0.3, rng.choice([0.0, -0.0], n), np.round(p, 1))
    elif kind == "nan" and n:
        p[rng.random(n) < 0.1] = np.nan
    elif kind == "wide":
        p = p * 3.0
    y = (rng.random(n) < np.nan_to_num(np.abs(p)) % 1).astype(np.intp)
    return np.column_stack([1 - p, p]), y, (np.nan_to_num(p) > 0.5).astype(np.intp)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 7, 60, 4095, 4096, 4097, 6000]),
       SCORES, st.sampled_from([0, 1]), st.booleans())
def test_the_pieces_are_the_frozen_ones(seed: int, n: int, kind: str, positive: int,
                                        shared: bool) -> None:
    """classification() and estimate(), with and without the shared ranking and P(positive),
    against their frozen forms: ties, negative scores, -0.0 beside 0.0, NaN, windows either
    side of SORT_ROWS."""
    with np.errstate(all="ignore"):  # NaN scores
        _pieces(seed, n, kind, positive, shared=shared)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The result, or the error's type: raw scores outside [0, 1] (which ingest never lets
    through) give a negative Bernoulli variance, and both forms fail the same way."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        return type(exc).__name__


def _pieces(seed: int, n: int, kind: str, positive: int, *, shared: bool) -> None:
    proba, y, yp = _piece_data(seed, n, kind)
    classes = ("a", "b")
    ranked = Ranked.of(proba[:, positive]) if shared else None
    same(classification(y, yp, proba, classes, positive, ranked=ranked),
         old_classification.classification(y, yp, proba, classes, positive))
    ref, ref_y, _ = _piece_data(seed + 1, 300, "unit")
    for calibration in (Calibration(None), Calibration.fit(ref, ref_y)):
        old = old_cbpe.Calibration(calibration.curves)
        p = calibration.positive(proba, positive) if shared and n else None
        same(_outcome(estimate, calibration, proba, yp, positive, seed, ranked=ranked, p=p),
             _outcome(old_cbpe.estimate, old, proba, yp, positive, seed))
    same(probabilities(proba), old_classification.probabilities(proba))


def test_probabilities_of_odd_rows_are_the_frozen_ones() -> None:
    """Two columns are summed as a + b now: a zero total (of either sign) is refused as it
    was, and an inf - inf total still gives its NaN row."""
    odd = [[-0.0, -0.0], [0.0, -0.0], [-0.0, 0.0], [np.inf, -np.inf], [np.nan, 1.0],
           [-1.0, 1.0], [-0.5, 1.0], [1e308, 1e308], [0.25, 0.75]]
    with np.errstate(all="ignore"):
        for i in range(len(odd)):
            for j in range(len(odd)):
                scores = np.array([odd[i], odd[j], [0.3, 0.7]])
                got, want = probabilities(scores), old_classification.probabilities(scores)
                assert (got is None) == (want is None), (odd[i], odd[j])
                if got is not None and want is not None:
                    same(got, want)
                    same(probabilities(scores, np.array([True, False, True])),
                         old_classification.probabilities(scores, np.array([True, False, True])))


def test_waiting_hand_overs_stay_within_their_budget_and_change_no_result(
        monkeypatch: Any, tmp_path: Path) -> None:
    """Beyond the budget a first pass keeps no hand-over: its final pass computes again, to
    the same bits; the cells held come back as finals (or evictions) drop first passes."""
    monkeypatch.setattr("plugins.quality.monitor.HANDOVER_BUDGET", 3 * 400)
    case = {"seed": 5, "k": 2, "windows": 8, "rows": 200, "positive": 1, "ties": 0,
            "scores": "ok", "labels": "half", "shared": "same", "lag": 0, "groups": False,
            "cost": None, "thresholds": False, "running": False}
    windows = _windows(case)
    config = _config(case)
    live = _monitor(QualityMonitor, tmp_path / "live", config)
    frozen = _monitor(FrozenMonitor, tmp_path / "frozen", config)
    held = []
    for window in [first for first, _ in windows] + [final for _, final in windows]:
        mine, theirs = _copy(window), _copy(window)
        asyncio.run(live.process(mine))
        asyncio.run(frozen.process(theirs))
        same(mine.results, theirs.results, f"final={window.final} start={window.start}")
        held.append(live.handover_cells)
    assert max(held) == 3 * 400  # three windows' hand-overs, never a fourth
    assert sum(f.handover is not None for f in live.first_pass.values()) == 0
    assert live.handover_cells == 0
