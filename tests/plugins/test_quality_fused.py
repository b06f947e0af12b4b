"""The quality monitor's fused and shortened computations give the very numbers (bit for bit,
same keys, same types) of the ones they replaced, kept here as they were: the binary CBPE
estimate from one set of sums, the binary counts metrics in plain Python, the ufuncs in place
of np.clip / np.append / np.diff / mean, and the series written with Accumulator.put."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.metrics import Accumulator
from agent.window import Window
from plugins.quality import exports as ex
from plugins.quality import metrics as m
from plugins.quality.cbpe import Calibration, Isotonic, estimate, expected_auc
from plugins.quality.classification import EPS, classification, confusion, per_class, trapezoid

# -- the previous forms -----------------------------------------------------------------------


def old_binary_counts(p: np.ndarray, y_pred: np.ndarray, positive: int
                      ) -> tuple[float, float, float, float]:
    predicted = y_pred == positive
    negative = y_pred == 1 - positive
    tp, fn = float(p[predicted].sum()), float(p[negative].sum())
    return tp, float(predicted.sum()) - tp, fn, float(negative.sum()) - fn


def old_binary_sd(p: np.ndarray, y_pred: np.ndarray, positive: int) -> dict[str, float]:
    predicted = y_pred == positive
    negative = y_pred == 1 - positive
    variance = p * (1.0 - p)
    vp, vn = float(variance[predicted].sum()), float(variance[negative].sum())
    tp, fn = float(p[predicted].sum()), float(p[negative].sum())
    n_pred, n = float(predicted.sum()), len(p)
    actual = tp + fn
    f1_den = tp + n_pred + fn
    return {
        "accuracy": math.sqrt(vp + vn) / n,
        "precision": math.sqrt(vp) / n_pred if n_pred else 0.0,
        "recall": math.sqrt(fn * fn * vp + tp * tp * vn) / actual ** 2 if actual > 0 else 0.0,
        "f1": 2 * math.sqrt((n_pred + fn) ** 2 * vp + tp * tp * vn) / f1_den ** 2
        if f1_den > 0 else 0.0,
    }


def old_auc_sd(auc: float, positives: float, rows: int) -> float:
    negatives = rows - positives
    if positives <= 1 or negatives <= 1:
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def old_estimate(calibration: Calibration, proba: np.ndarray, y_pred: np.ndarray,
                 positive: int) -> dict[str, Any]:
    """The binary path of estimate() before: the two-column matrix, counts, then the band."""
    calibrated = calibration.apply(proba)
    n = len(calibrated)
    if n == 0:
        return {}
    div = (lambda a, b: a / b if b > 0 else 0.0)  # noqa: E731
    tp, fp, fn, tn = old_binary_counts(calibrated[:, positive], y_pred, positive)
    out: dict[str, Any] = {"accuracy": float((tp + tn) / n), "precision": div(tp, tp + fp),
                           "recall": div(tp, tp + fn), "f1": div(2 * tp, 2 * tp + fp + fn)}
    auc = expected_auc(calibrated[:, positive], proba[:, positive])
    if auc is not None:
        out["roc_auc"] = auc
    band = old_binary_sd(calibrated[:, positive], y_pred, positive)
    if auc is None:
        auc = expected_auc(calibrated[:, positive], proba[:, positive])
    if auc is not None:
        band["roc_auc"] = old_auc_sd(auc, float(calibrated[:, positive].sum()), len(proba))
    out["error"] = {name: float(3.0 * sd) for name, sd in band.items() if name in out}
    out["calibrated"] = calibration.fitted
    return out


def old_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = score + 0.0
    if len(score) and score.min() >= 0.0 and score.max() < 2.0:
        key = np.sort(score.view(np.int64) * 2 + truth)[::-1]
        ranked, hits = key >> 1, key & 1
    else:
        order = np.argsort(score)[::-1]
        ranked, hits = score[order], truth[order]
    cut = np.flatnonzero(ranked[1:] != ranked[:-1])
    cut = np.append(cut, len(ranked) - 1)
    tps = np.cumsum(hits)[cut].astype(np.float64)
    return tps, (cut + 1) - tps


def old_ranking(truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    if not len(truth):
        return {}
    tps, fps = old_curve(truth, score)
    out = {}
    if tps[-1] > 0 and fps[-1] > 0:
        out["roc_auc"] = trapezoid(tps / tps[-1], fps / fps[-1])
    if tps[-1] > 0:
        recall = tps / tps[-1]
        out["pr_auc"] = float(np.dot(np.diff(recall, prepend=0.0), tps / (tps + fps)))
    return out


def old_ece(proba: np.ndarray, y_true: np.ndarray, bins: int = 10) -> float:
    if proba.shape[1] == 2:
        top = (proba[:, 1] > proba[:, 0]).astype(np.intp)
        confidence = np.where(top == 1, proba[:, 1], proba[:, 0])
    else:
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(len(top)), top]
    correct = (top == y_true).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    size = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / max(1, size.sum()))


def old_classification(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                       classes: tuple[str, ...], positive: int) -> dict[str, Any]:
    """classification() of a binary model before (the per-class arrays, the wrappers)."""
    n, k = len(y_true), len(classes)
    if n == 0:
        return {}
    counts = confusion(y_true, y_pred, k)
    stats = per_class(counts)
    out: dict[str, Any] = {"accuracy": float(np.trace(counts) / n), "samples": n}
    for name in ("precision", "recall", "f1"):
        out[name] = float(stats[name][positive])
    out["confusion"] = {classes[t]: {classes[p]: int(counts[t, p]) for p in range(k)
                                     if counts[t, p]} for t in range(k) if counts[t].any()}
    out["label_class_ratio"] = {classes[i]: float(v / n)
                                for i, v in enumerate(stats["support"]) if v}
    if proba is not None:
        rows = np.arange(len(y_true))
        p_true = proba[rows, y_true]
        out["log_loss"] = float(-np.log(np.clip(p_true, EPS, 1 - EPS)).mean())
        brier = float(np.einsum("ij,ij->i", proba, proba).mean() - 2 * p_true.mean() + 1)
        out["brier"] = brier / 2
        out["ece"] = old_ece(proba, y_true)
        out.update(old_ranking(y_true == positive, proba[:, positive]))
    return out


# -- data ---------------------------------------------------------------------------------------


def binary_window(seed: int, n: int, ties: int, unpredicted: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (rounded to `ties` decimals when > 0, so thresholds repeat), labels, and
    predictions (-1 on some rows when `unpredicted`: a class the model was never told)."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if ties:
        p = np.round(p, ties)
    y = (rng.random(n) < p).astype(np.int64)
    yp = (p > rng.random()).astype(np.int64)
    if unpredicted and n:
        yp[rng.random(n) < 0.1] = -1
    return np.column_stack([1 - p, p]), y, yp


CASES = (st.integers(0, 2**32 - 1), st.integers(0, 300), st.integers(0, 2), st.booleans(),
         st.sampled_from([0, 1]))


@settings(max_examples=150, deadline=None)
@given(*CASES, st.sampled_from(["raw", "one curve", "two curves"]))
def test_binary_estimate_is_the_general_path_bit_for_bit(
        seed: int, n: int, ties: int, unpredicted: bool, positive: int, calibrated: str) -> None:
    proba, _, yp = binary_window(seed, n, ties, unpredicted)
    ref, ref_y, _ = binary_window(seed + 1, 400, ties, unpredicted=False)
    calibration = Calibration(None)
    if calibrated == "one curve":
        calibration = Calibration.fit(ref, ref_y)
    elif calibrated == "two curves":  # a saved calibration with k curves: the general path
        calibration = Calibration([Isotonic.fit(ref[:, c], ref_y == c) for c in range(2)])
    got = estimate(calibration, proba, yp, positive, seed)
    want = old_estimate(calibration, proba, yp, positive)
    assert repr(got) == repr(want)


@settings(max_examples=150, deadline=None)
@given(*CASES, st.booleans())
def test_binary_classification_is_the_array_path_bit_for_bit(
        seed: int, n: int, ties: int, unpredicted: bool, positive: int, scored: bool) -> None:
    proba, y, yp = binary_window(seed, n, ties, unpredicted=False)
    classes = ("no", "yes")
    got = classification(y, yp, proba if scored else None, classes, positive)
    want = old_classification(y, yp, proba if scored else None, classes, positive)
    assert repr(got) == repr(want)


def old_window_series(  # noqa: PLR0912 - the previous form, kept whole
        key: tuple[str, str, str], window: Window, results: dict[str, Any],
        limit: int) -> Accumulator:
    """The series as Accumulator.add made them (the label checks, by name)."""
    out = Accumulator()
    labels = dict(zip(("model", "model_version", "window"), key, strict=True))
    out.add(m.SAMPLES, window.n, **labels)
    out.add(m.LABELED, int(window.labeled.sum()), **labels)
    out.add(m.WINDOW_END, window.end, **labels)
    out.add(m.WINDOW_FINAL, int(window.final), **labels)
    metrics = results.get("metrics", {})
    for name, metric in ex.SCALARS.items():
        if isinstance(metrics.get(name), float):
            out.add(metric, metrics[name], **labels)
    for name, metric in ex.PER_CLASS.items():
        value = metrics.get(name)
        if isinstance(value, float):
            out.add(metric, value, **{"class": window.classes[window.positive]}, **labels)
        elif isinstance(value, dict):
            for average in ("macro", "micro", "weighted"):
                out.add(metric, value[average], **{"class": f"_{average}"}, **labels)
            for cls, v in list(value["per_class"].items())[:limit]:
                out.add(metric, v, **{"class": cls}, **labels)
    for true_class, row in list(metrics.get("confusion", {}).items())[:limit]:
        for predicted, count in list(row.items())[:limit]:
            out.add(m.CONFUSION, count, true_class=true_class, predicted_class=predicted,
                    **labels)
    for metric, name in ((m.PREDICTION_RATIO, "prediction_class_ratio"),
                         (m.LABEL_RATIO, "label_class_ratio")):
        for cls, ratio in list(metrics.get(name, {}).items())[:limit]:
            out.add(metric, ratio, **{"class": cls}, **labels)
    estimated = results.get("estimated", {})
    for name, metric in ex.ESTIMATED.items():
        if name in estimated:
            out.add(metric, estimated[name], **labels)
    for name, error in estimated.get("error", {}).items():
        out.add(m.EST_ERROR, error, metric=name, **labels)
    if estimated:
        out.add(m.CALIBRATED, int(estimated.get("calibrated", False)), **labels)
    for name, gap in results.get("estimation_gap", {}).items():
        out.add(m.EST_GAP, gap, metric=name, **labels)
    if "cost" in results:
        out.add(m.COST, results["cost"]["value"], currency=results["cost"]["currency"],
                **labels)
    found = results.get("fairness")
    if found:
        for group, entry in found["groups"].items():
            for name, metric in ex.GROUPS.items():
                if name in entry:
                    out.add(metric, entry[name], group=group, **labels)
        for name, metric in (("demographic_parity_difference", m.PARITY),
                             ("equalized_odds_difference", m.ODDS)):
            if name in found:
                out.add(metric, found[name], **labels)
    for feature, issues in window.quality.items():
        for issue, ratio in issues.items():
            out.add(m.FEATURE_ISSUES, ratio, feature=feature,
                    issue=issue.removesuffix("_ratio"), **labels)
    return out


NAME = st.text(min_size=1, max_size=300)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 200), st.integers(2, 5), NAME, NAME,
       st.integers(1, 4))
def test_window_series_are_those_add_made(seed: int, n: int, k: int, model: str, name: str,
                                          limit: int) -> None:
    """Every series, label value (cut at 256 characters) and value as add() gave them:
    binary and multiclass windows, cost, fairness, data-quality issues, long names."""
    rng = np.random.default_rng(seed)
    classes = tuple(f"{name}{i}" for i in range(k))
    y, yp = rng.integers(0, k, n), rng.integers(0, k, n)
    positive = 1 if k == 2 else -1
    proba = rng.dirichlet(np.ones(k), n)
    window = Window(model=model, model_version="v" + name, spec="1h", start=0.0, end=3600.0,
                    task="classification", n=n + 3, y_pred=yp, y_true=y, classes=classes,
                    positive=positive, scores=proba,
                    quality={name: {"missing_ratio": 0.25, "out_of_range_ratio": 0.5}})
    metrics = classification(y, yp, proba, classes, positive)
    results: dict[str, Any] = {
        "metrics": metrics,
        "estimated": estimate(Calibration(None), proba, yp, positive, seed),
        "estimation_gap": {"accuracy": 0.125, "f1": -0.25},
        "cost": {"value": 12.5, "per_prediction": 0.5, "currency": name},
        "fairness": {"groups": {name: {"samples": 3, "tpr": 0.5}, "b": {"f1": 1.0}},
                     "demographic_parity_difference": 0.25},
    }
    key = (model, "v" + name, "1h")
    got = ex.window_series(key, window, results, limit)
    want = old_window_series(key, window, results, limit)
    assert got.series == want.series
    assert all(type(v) is float for table in got.series.values() for v in table.values())
    judged = ex.judged_series(Accumulator(), key, results, 40.0, {name: True, "f1": False})
    old = Accumulator()
    labels = dict(zip(("model", "model_version", "window"), key, strict=True))
    old.add(m.COST_TOTAL, 40.0, currency=name, **labels)
    old.add(m.DEGRADED, 1, metric=name, **labels)
    old.add(m.DEGRADED, 0, metric="f1", **labels)
    assert judged.series == old.series
