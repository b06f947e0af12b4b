"""Model-quality arithmetic against scikit-learn (to 1e-9) and against the published definitions."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from sklearn.isotonic import IsotonicRegression

from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.model import Event
from agent.window import Window
from plugins.quality.cbpe import Calibration, Isotonic, expected_metrics, sampling_sd
from plugins.quality.classification import classification, ece
from plugins.quality.config import Cost, ModelQuality, QualityConfig, Threshold
from plugins.quality.fairness import fairness
from plugins.quality.monitor import QualityMonitor, cost
from plugins.quality.regression import regression

TOL = 1e-9


def binary_data(seed: int, n: int, ties: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    if ties:
        score = np.round(score * ties) / ties  # many equal scores
    y = (rng.random(n) < score).astype(np.int64)
    return y, (score > 0.5).astype(np.int64), np.column_stack([1 - score, score])


def check_binary(y: np.ndarray, yp: np.ndarray, proba: np.ndarray) -> None:
    got = classification(y, yp, proba, ("0", "1"), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, yp), abs=TOL)
        for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score),
                         ("f1", sk.f1_score)):
            assert got[name] == pytest.approx(fn(y, yp, zero_division=0), abs=TOL), name
        assert got["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=[0, 1]), abs=TOL)
        assert got["brier"] == pytest.approx(
            sk.brier_score_loss(y, proba[:, 1], labels=[0, 1]), abs=TOL)
        if len(np.unique(y)) == 2:
            assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba[:, 1]), abs=TOL)
        else:
            assert "roc_auc" not in got  # undefined with one class: left out, not invented
        if y.any():
            assert got["pr_auc"] == pytest.approx(
                sk.average_precision_score(y, proba[:, 1]), abs=TOL)
    counts = sk.confusion_matrix(y, yp, labels=[0, 1])
    for t in range(2):
        for p in range(2):
            assert got["confusion"].get(str(t), {}).get(str(p), 0) == counts[t, p]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.sampled_from([0, 5, 20]))
def test_binary_metrics_equal_sklearn(seed: int, n: int, ties: int) -> None:
    check_binary(*binary_data(seed, n, ties))


@pytest.mark.parametrize("case", ["one_class_labels", "one_class_predictions", "all_wrong"])
def test_binary_edge_cases(case: str) -> None:
    y, yp, proba = binary_data(3, 200, 10)
    if case == "one_class_labels":
        y = np.ones_like(y)
    elif case == "one_class_predictions":
        yp = np.zeros_like(yp)
    else:
        yp = 1 - y
    check_binary(y, yp, proba)


def test_empty_window_has_no_metrics() -> None:
    empty = np.empty(0, np.int64)
    assert classification(empty, empty, None, ("0", "1"), 1) == {}
    assert regression(np.empty(0), np.empty(0)) == {}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(30, 400), st.integers(3, 7))
def test_multiclass_metrics_equal_sklearn(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), n)
    y = (proba.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    yp = proba.argmax(axis=1)
    classes = tuple(str(c) for c in range(k))
    got = classification(y, yp, proba, classes, -1)
    labels = sorted(set(y) | set(yp))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score),
                         ("f1", sk.f1_score)):
            for average in ("macro", "micro", "weighted"):
                want = fn(y, yp, average=average, labels=labels, zero_division=0)
                assert got[name][average] == pytest.approx(want, abs=TOL), (name, average)
            per_class = fn(y, yp, average=None, labels=labels, zero_division=0)
            assert [got[name]["per_class"][str(c)] for c in labels] == pytest.approx(
                per_class, abs=TOL)
        assert got["log_loss"] == pytest.approx(sk.log_loss(y, proba, labels=range(k)),
                                                abs=TOL)
        assert got["brier"] == pytest.approx(sk.brier_score_loss(y, proba, labels=range(k)),
                                             abs=TOL)
        if len(np.unique(y)) == k:
            assert got["roc_auc"] == pytest.approx(
                sk.roc_auc_score(y, proba, multi_class="ovr", labels=range(k)), abs=TOL)
            assert got["pr_auc"] == pytest.approx(sk.average_precision_score(y, proba),
                                                  abs=TOL)


def reference_ece(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Guo et al. 2017, written plainly: bins (lo, hi] over top-label confidence."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(len(y)) if (lo < proba[i].max() <= hi)
                   or (b == 0 and proba[i].max() == 0)]
        if members:
            accuracy = np.mean([proba[i].argmax() == y[i] for i in members])
            confidence = np.mean([proba[i].max() for i in members])
            total += len(members) / len(y) * abs(accuracy - confidence)
    return total


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 200), st.integers(2, 5))
def test_ece_matches_its_definition(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    proba = np.round(rng.dirichlet(np.ones(k), n), 1)  # confidences on bin edges too
    proba = proba / proba.sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    assert ece(proba, y) == pytest.approx(reference_ece(proba, y), abs=TOL)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 300))
def test_isotonic_matches_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.round(rng.random(n), 2)
    y = (rng.random(n) < x ** 2).astype(np.float64)
    ours = Isotonic.fit(x, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    probe = np.linspace(-0.1, 1.1, 57)
    np.testing.assert_allclose(ours(probe), theirs.predict(probe), atol=TOL)


def reference_cbpe(p: np.ndarray, yp: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """The published CBPE definitions, one prediction at a time (binary)."""
    tp = sum(p[i] for i in range(len(p)) if yp[i] == 1)
    fp = sum(1 - p[i] for i in range(len(p)) if yp[i] == 1)
    fn = sum(p[i] for i in range(len(p)) if yp[i] == 0)
    tn = sum(1 - p[i] for i in range(len(p)) if yp[i] == 0)
    out = {"accuracy": (tp + tn) / len(p), "precision": tp / (tp + fp) if tp + fp else 0.0,
           "recall": tp / (tp + fn) if tp + fn else 0.0,
           "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0}
    # Expected ROC: walk thresholds from the highest raw score; equal scores move together.
    points, etp, efp = [(0.0, 0.0)], 0.0, 0.0
    for value in sorted(set(score.tolist()), reverse=True):
        members = [i for i in range(len(p)) if score[i] == value]
        etp += sum(p[i] for i in members)
        efp += sum(1 - p[i] for i in members)
        points.append((efp, etp))
    if etp > 0 and efp > 0:
        out["roc_auc"] = sum((b[0] - a[0]) / efp * (a[1] + b[1]) / 2 / etp
                             for a, b in itertools.pairwise(points))
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 150))
def test_cbpe_matches_its_definition(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    raw = np.round(rng.random(n), 1)
    proba = np.column_stack([1 - raw, raw])
    reference = rng.random(400)
    calibration = Calibration.fit(np.column_stack([1 - reference, reference]),
                                  (rng.random(400) < reference ** 2).astype(np.int64))
    calibrated = calibration.apply(proba)
    yp = (raw > 0.5).astype(np.int64)
    got = expected_metrics(calibrated, yp, proba, 1)
    want = reference_cbpe(calibrated[:, 1], yp, raw)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert got[name] == pytest.approx(want[name], abs=TOL), name
    if 0 < calibrated[:, 1].sum() < n:
        assert got["roc_auc"] == pytest.approx(want["roc_auc"], abs=TOL)


def test_cbpe_estimates_track_realized_performance() -> None:
    """Miscalibrated scores (true probability = score squared): calibration corrects them."""
    rng = np.random.default_rng(5)
    raw = rng.random(60_000)
    y = (rng.random(60_000) < raw ** 2).astype(np.int64)
    proba, yp = np.column_stack([1 - raw, raw]), (raw > 0.5).astype(np.int64)
    calibration = Calibration.fit(proba[:10_000], y[:10_000])
    got = expected_metrics(calibration.apply(proba[10_000:]), yp[10_000:], proba[10_000:], 1)
    real = classification(y[10_000:], yp[10_000:], proba[10_000:], ("0", "1"), 1)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert got[name] == pytest.approx(real[name], abs=0.02), name
    naive = expected_metrics(proba[10_000:], yp[10_000:], proba[10_000:], 1)
    assert abs(naive["precision"] - real["precision"]) > 0.1  # what calibration is for


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 300), st.booleans())
def test_regression_equals_sklearn(seed: int, n: int, zeros: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(3, 2, n)
    if zeros:
        y[::3] = 0.0
    yp = y + rng.normal(0, 1, n)
    got = regression(y, yp)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, yp), abs=TOL)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, yp)), abs=TOL)
    assert got["r2"] == pytest.approx(sk.r2_score(y, yp), abs=TOL)
    nonzero = y != 0
    assert got["mape"] == pytest.approx(
        sk.mean_absolute_percentage_error(y[nonzero], yp[nonzero]), abs=TOL)
    assert got["mape_excluded_samples"] == int((~nonzero).sum())
    assert got["residual_mean"] == pytest.approx(float(np.mean(y - yp)), abs=TOL)


def test_regression_constant_target_is_sklearn_r2() -> None:
    y = np.full(5, 2.0)
    assert regression(y, y)["r2"] == sk.r2_score(y, y) == 1.0
    assert regression(y, y + 1)["r2"] == sk.r2_score(y, y + 1) == 0.0


def test_fairness_rates_and_disparities() -> None:
    group = np.array(["a"] * 200 + ["b"] * 200 + ["tiny"] * 5, object)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 405)
    yp = np.where(group == "a", y, rng.integers(0, 2, 405))  # perfect for a, random for b
    found = fairness(group, y, yp, 1, min_group_size=20, max_groups=10)
    a, b = found["groups"]["a"], found["groups"]["b"]
    assert found["groups"]["tiny"] == {"samples": 5}  # too small to claim anything
    assert (a["tpr"], a["fpr"], a["f1"]) == (1.0, 0.0, 1.0)
    in_b = group == "b"
    assert b["tpr"] == pytest.approx(sk.recall_score(y[in_b], yp[in_b]), abs=TOL)
    assert b["f1"] == pytest.approx(sk.f1_score(y[in_b], yp[in_b]), abs=TOL)
    assert b["selection_rate"] == pytest.approx(yp[in_b].mean(), abs=TOL)
    assert found["demographic_parity_difference"] == pytest.approx(
        abs(a["selection_rate"] - b["selection_rate"]), abs=TOL)
    assert found["equalized_odds_difference"] == pytest.approx(
        max(1 - b["tpr"], b["fpr"]), abs=TOL)


def window(y: list[int], yp: list[int], *, final: bool = True, start: float = 0.0) -> Window:
    return Window(model="m", model_version="1", spec="1h", start=start, end=start + 3600,
                  task="classification", n=len(y), y_pred=np.array(yp), y_true=np.array(y),
                  classes=("0", "1"), positive=1, final=final)


def test_cost_of_a_window() -> None:
    w = window([1, 1, 0, 0, 0], [1, 0, 1, 0, 0])
    found = cost(Cost(currency="EUR", tp=-10, fn=100, fp=5), w, w.labeled)
    assert found == {"value": -10 + 100 + 5, "per_prediction": 95 / 5, "currency": "EUR"}
    matrix = Cost(classes=["0", "1"], matrix=[[0, 5], [100, -10]])
    assert cost(matrix, w, w.labeled)["value"] == 95


def monitor(tmp_path: Path, **config: object) -> QualityMonitor:
    """The threshold tests look at judgements: the per-window summary is tested on its own."""
    config.setdefault("window_events", False)
    settings_ = QualityConfig(**config)  # type: ignore[arg-type]
    ctx = PluginContext(plugin="quality", config=settings_, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("quality", 100), emitter=lambda _: True)
    return QualityMonitor(settings_, ctx)


async def test_thresholds_trigger_once_and_clear_with_hysteresis(tmp_path: Path) -> None:
    mon = monitor(tmp_path, thresholds={
        "accuracy": Threshold(below=0.8, clear=0.9, min_samples=10)})
    kinds = []
    for i, right in enumerate([95, 70, 60, 85, 92, 50]):  # accuracy in percent
        y = [1] * 100
        yp = [1] * right + [0] * (100 - right)
        kinds.append([e.kind for e in await mon.process(window(y, yp, start=i * 3600))])
    assert kinds == [[], ["quality.degraded"], [], [], ["quality.recovered"],
                     ["quality.degraded"]]


async def test_a_quiet_window_pages_nobody(tmp_path: Path) -> None:
    mon = monitor(tmp_path, thresholds={"accuracy": Threshold(below=0.8, min_samples=50)})
    assert await mon.process(window([1] * 10, [0] * 10)) == []


async def test_estimation_gap_raises_a_concept_drift_event(tmp_path: Path) -> None:
    """Scores say 90% right; the labels say otherwise: CBPE alone cannot see this."""
    mon = monitor(tmp_path, reference_samples=1000)
    rng = np.random.default_rng(2)
    raw = rng.random(4000)
    good = (rng.random(4000) < raw).astype(np.int64)
    events: list[Event] = []
    for i, labels in enumerate([good, 1 - good]):  # the world flips its labels
        w = window(labels.tolist(), (raw > 0.5).astype(int).tolist(), start=i * 3600)
        w.scores = np.column_stack([1 - raw, raw])
        events += await mon.process(w)
        assert "estimated" in w.results
    assert [e.kind for e in events] == ["quality.degraded"]
    assert events[0].attributes["metric"] == "accuracy_gap"
    assert events[0].data["value"] > 0.3


async def test_per_model_thresholds_add_to_global(tmp_path: Path) -> None:
    mon = monitor(tmp_path, thresholds={},
                     models={"m": ModelQuality(thresholds={"f1": Threshold(below=0.5,
                                                                           min_samples=1)})})
    (event,) = await mon.process(window([1, 1, 1, 1], [0, 0, 0, 1]))
    assert event.attributes["metric"] == "f1"
    assert event.data["value"] == pytest.approx(0.4)


def drifting_stream(seed: int, windows: int, *, drift_from: int, rows: int = 1940
                    ) -> list[Window]:
    """Confident scores (sigmoid(4x)); 960-980 rows labelled. Before `drift_from` the labels
    follow the scores; from it they follow something the model does not see (40% positive,
    independent of x): the scores stay as sure as ever while the labels disagree."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(windows):
        raw = 1 / (1 + np.exp(-4 * rng.normal(0, 1, rows)))
        truth = rng.random(rows) < (raw if i < drift_from else 0.4)
        labelled = np.zeros(rows, bool)
        labelled[rng.choice(rows, 960 + 7 * i % 21, replace=False)] = True
        labels = np.where(labelled, truth.astype(np.int64), -1)
        w = window(labels.tolist(), (raw > 0.5).astype(int).tolist(), start=i * 3600)
        w.scores = np.column_stack([1 - raw, raw])
        out.append(w)
    return out


async def test_concept_drift_fires_on_windows_under_a_thousand_labels(tmp_path: Path) -> None:
    """Issue 12.4: realized F1 ~0.44 against ~0.88 estimated on ~970 labelled rows a window.
    The default alarm once required 1,000 labelled rows and stayed silent for ever."""
    mon = monitor(tmp_path)  # the defaults: accuracy_gap above 0.05, cleared below 0.03
    fired: dict[int, list[Event]] = {}
    for i, w in enumerate(drifting_stream(3, 9, drift_from=6)):  # 6 x ~970 rows calibrate
        fired[i] = list(await mon.process(w))
        assert 960 <= int(w.labeled.sum()) <= 980
        if i >= 6:
            assert w.results["metrics"]["f1"] == pytest.approx(0.44, abs=0.05)
            assert w.results["estimated"]["f1"] == pytest.approx(0.88, abs=0.05)
            assert w.results["estimated"]["calibrated"] is True
    assert [i for i, found in fired.items() if found] == [6]  # at once, then held (hysteresis)
    (event,) = fired[6]
    assert (event.kind, event.attributes["metric"]) == ("quality.degraded", "accuracy_gap")
    assert 960 <= event.data["samples"] <= 980
    assert event.data["value"] > 0.2
    # the gap beat both the effect floor (0.05) and its sampling error at this many rows
    assert 0.01 < event.data["sampling_error"] < 0.1 < event.data["value"]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(150, 3000))
def test_closed_form_band_matches_simulated_label_draws(seed: int, n: int) -> None:
    """The binary band is the spread of realized metrics over labels drawn from the
    calibrated probabilities: checked against 4,000 such draws."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 0.6, n)
    yp = (rng.random(n) < 0.5 + 0.4 * (p - 0.5)).astype(np.int64)  # imperfect predictions
    proba = np.column_stack([1 - p, p])
    got = sampling_sd(proba, yp, proba, 1, seed=1)
    hits = rng.random((4000, n)) < p  # 4,000 label draws; counts per draw, vectorised
    predicted = yp == 1
    tp = hits[:, predicted].sum(axis=1)
    fn = hits[:, ~predicted].sum(axis=1)
    fp, tn = predicted.sum() - tp, (~predicted).sum() - fn
    with np.errstate(divide="ignore", invalid="ignore"):
        real = {"accuracy": (tp + tn) / n,
                "precision": np.nan_to_num(tp / (tp + fp)),
                "recall": np.nan_to_num(tp / (tp + fn)),
                "f1": np.nan_to_num(2 * tp / (2 * tp + fp + fn))}
    for name, values in real.items():
        # 4,000 draws measure a standard deviation to ~2.2% (1 sigma); the first-order
        # (delta) terms of recall and F1 add a little at n = 150
        assert got[name] == pytest.approx(float(np.std(values)), rel=0.1), name
    aucs = [sk.roc_auc_score(y, p) for y in hits[:300] if 0 < y.sum() < n]
    assert 0.8 < got["roc_auc"] / float(np.std(aucs)) < 1.5  # Hanley-McNeil: on the wide side


async def test_a_gap_within_its_sampling_error_pages_nobody(tmp_path: Path) -> None:
    """A 0.065 accuracy gap is above the 0.05 floor, but on 100 labelled rows chance alone
    strays that far (3 sigma ~ 0.09); on 3,000 rows (~0.02) it does not."""
    mon = monitor(tmp_path)
    stream = drifting_stream(4, 6, drift_from=6)  # calibrate on ~5,800 labelled rows
    for w in stream:
        assert await mon.process(w) == []
    rng = np.random.default_rng(9)
    fired = {}
    for size in (100, 3000):
        raw = 1 / (1 + np.exp(-4 * rng.normal(0, 1, size)))
        expected = float(np.maximum(raw, 1 - raw).mean())  # ~ the estimate: scores are true
        right = np.zeros(size, bool)  # exactly (expected - 0.065) of the rows right
        right[rng.choice(size, round((expected - 0.065) * size), replace=False)] = True
        truth = np.where(right, raw > 0.5, raw <= 0.5)
        w = window(truth.astype(int).tolist(), (raw > 0.5).astype(int).tolist(),
                   start=size * 3600.0)
        w.spec = f"{size}rows"  # its own alarm state
        w.scores = np.column_stack([1 - raw, raw])
        fired[size] = [e.data for e in await mon.process(w)]
        gap, error = (abs(w.results["estimation_gap"]["accuracy"]),
                      w.results["estimation_gap_error"]["accuracy"])
        assert gap > 0.05, size
        assert (gap > error) == (size == 3000), (size, gap, error)
    assert fired[100] == []
    assert [d["samples"] for d in fired[3000]] == [3000]


async def test_an_explicit_min_samples_still_applies_to_a_gap(tmp_path: Path) -> None:
    """Configs that set `min_samples = 1000` on `accuracy_gap` keep that floor."""
    mon = monitor(tmp_path, thresholds={
        "accuracy_gap": Threshold(above=0.05, clear=0.03, min_samples=1000)})
    events: list[Event] = []
    for w in drifting_stream(3, 9, drift_from=6):
        events += await mon.process(w)
    assert events == []
    assert Threshold(above=0.05).floor("accuracy_gap") == 100
    assert Threshold(above=0.05).floor("accuracy") == 500


async def test_a_final_window_reuses_its_first_estimate_only_while_valid(tmp_path: Path) -> None:
    """The final pass of a window has the same rows and scores as its first: the estimate
    is kept, unless the calibration changed in between (then it is computed again)."""
    mon = monitor(tmp_path, reference_samples=1000)
    stream = drifting_stream(5, 2, drift_from=2)
    first, second = stream
    first.final = False
    await mon.process(first)
    before = dict(first.results["estimated"])
    assert before["calibrated"] is False
    first.final = True
    await mon.process(first)  # ~960 labels: short of the 1,000 that calibrate
    assert first.results["estimated"] == before
    second.final = False
    await mon.process(second)
    mon.calibrations[("m", "1")] = Calibration.fit(second.scores, (second.scores[:, 1] > 0.5
                                                                    ).astype(np.int64))
    second.final = True
    await mon.process(second)
    assert second.results["estimated"]["calibrated"] is True  # recomputed, not the kept one
    third = drifting_stream(6, 1, drift_from=1)[0]
    third.start, third.final = 10 * 3600.0, False
    await mon.process(third)
    first_pass = third.results["metrics"]
    unlabelled = np.flatnonzero(third.y_true < 0)
    third.y_true[unlabelled] = third.y_pred[unlabelled]  # late labels, all saying "right"
    third.final, third.results = True, {}
    await mon.process(third)
    assert third.results["metrics"]["samples"] == len(third.y_true) > first_pass["samples"]
    assert third.results["metrics"]["accuracy"] > first_pass["accuracy"]


async def test_no_concept_drift_alarm_before_the_estimate_is_calibrated(tmp_path: Path) -> None:
    """Scores that overstate the odds (the truth is 0.2 + 0.6 x score) give a gap of ~0.1
    until the first 5,000 labelled rows calibrate them: miscalibration, not concept drift.
    After calibration the same stable stream stays quiet too."""
    mon = monitor(tmp_path)
    rng = np.random.default_rng(8)
    seen = []
    for i in range(9):
        raw = rng.random(1940)
        truth = (rng.random(1940) < 0.2 + 0.6 * raw).astype(np.int64)
        labels = np.where(rng.random(1940) < 0.5, truth, -1)
        w = window(labels.tolist(), (raw > 0.5).astype(int).tolist(), start=i * 3600)
        w.scores = np.column_stack([1 - raw, raw])
        seen.append((await mon.process(w), w.results["estimated"]["calibrated"],
                     abs(w.results["estimation_gap"]["accuracy"])))
    assert [events for events, _, _ in seen] == [[]] * 9
    assert [calibrated for _, calibrated, _ in seen] == [False] * 6 + [True] * 3
    assert min(gap for _, calibrated, gap in seen if not calibrated) > 0.07  # would have fired


async def test_an_accuracy_threshold_in_the_file_keeps_the_concept_drift_alarm(
        tmp_path: Path) -> None:
    """Thresholds in the file add to the default `accuracy_gap`; `enabled = false` removes it."""
    kept = monitor(tmp_path / "kept", thresholds={"accuracy": Threshold(below=0.1)})
    off = monitor(tmp_path / "off", thresholds={"accuracy_gap": Threshold(enabled=False)})
    found: dict[str, list[str]] = {"kept": [], "off": []}
    for w in drifting_stream(3, 8, drift_from=6):
        found["kept"] += [e.attributes["metric"] for e in await kept.process(w)]
        w.results = {}
        found["off"] += [e.attributes["metric"] for e in await off.process(w)]
    assert found == {"kept": ["accuracy_gap"], "off": []}
    with pytest.raises(ValueError, match="exactly one"):
        Threshold(clear=0.5)  # enabled, but neither below nor above


async def test_each_final_window_is_summarized_once_as_plain_numbers(tmp_path: Path) -> None:
    mon = monitor(tmp_path, window_events=True)
    y, yp = [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]
    assert await mon.process(window(y, yp, final=False)) == []  # not final: no summary
    (event,) = await mon.process(window(y, yp))
    assert event.kind == "quality.window"
    assert event.attributes == {"model": "m", "model_version": "1", "window": "1h"}
    assert event.data["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert event.data["n_labeled"] == 6
    assert all(isinstance(v, float) for v in event.data["metrics"].values())
    assert await mon.process(window(y, yp)) == []  # the same final window again: once


@given(gap=st.dictionaries(st.sampled_from(["accuracy", "f1", "roc_auc"]),
                           st.floats(-1, 1), max_size=3), calibrated=st.booleans())
def test_the_gaps_alone_are_the_gaps_of_everything(gap: dict[str, float],
                                                   calibrated: bool) -> None:
    """_judge reads only the `_gap` names under the default thresholds (flatten(only_gaps))."""
    from plugins.quality.monitor import flatten  # noqa: PLC0415

    w = window([0, 1, 1, 0], [0, 1, 0, 0])
    w.results = {"metrics": {"accuracy": 0.75}, "estimation_gap": gap,
                 "estimated": {"accuracy": 0.7, "calibrated": calibrated}}
    everything = flatten(w)
    assert flatten(w, only_gaps=True) == {k: v for k, v in everything.items()
                                          if k.endswith("_gap")}
    assert "accuracy" in everything
    assert bool(flatten(w, only_gaps=True)) == (calibrated and bool(gap))
