"""Label-free performance estimates: confidence-based performance estimation (CBPE).

Scores are calibrated on a labelled reference (isotonic regression, one class against the
rest, rows renormalised), and then each unlabelled prediction contributes its calibrated
probabilities to an expected confusion matrix. Accuracy, precision, recall and F1 follow
from the expected counts; ROC AUC from expected true/false positives at each distinct raw
score. The band is 3 standard deviations of the metric over label draws from the
calibrated probabilities (a parametric bootstrap, seeded: replays are deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from plugins.quality.classification import confusion, per_class

DRAWS = 20
BAND_ROWS = 10_000
BAND_SIGMAS = 3.0


@dataclass
class Isotonic:
    """A non-decreasing step function, linear between fitted points (as scikit-learn's)."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, score: np.ndarray, truth: np.ndarray) -> Isotonic:
        xs, inverse = np.unique(score, return_inverse=True)
        weight = np.bincount(inverse).astype(np.float64)
        mean = np.bincount(inverse, truth.astype(np.float64)) / weight
        # Pool adjacent violators, on a stack of blocks (value, weight, count).
        values: list[float] = []
        weights: list[float] = []
        counts: list[int] = []
        for block_mean, block_weight in zip(mean.tolist(), weight.tolist(), strict=True):
            v, w, c = block_mean, block_weight, 1
            while values and values[-1] >= v:
                pv, pw, pc = values.pop(), weights.pop(), counts.pop()
                v, w, c = (pv * pw + v * w) / (pw + w), pw + w, pc + c
            values.append(v)
            weights.append(w)
            counts.append(c)
        return cls(xs, np.repeat(values, counts))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        fitted: np.ndarray = np.interp(score, self.x, self.y)
        return fitted

    def to_json(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}


class Calibration:
    def __init__(self, curves: list[Isotonic] | None) -> None:
        self.curves = curves  # None: the raw scores are taken as probabilities

    @classmethod
    def fit(cls, proba: np.ndarray, y_true: np.ndarray) -> Calibration:
        k = proba.shape[1]
        if k == 2:
            return cls([Isotonic.fit(proba[:, 1], y_true == 1)])
        return cls([Isotonic.fit(proba[:, c], y_true == c) for c in range(k)])

    @property
    def fitted(self) -> bool:
        return self.curves is not None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        if self.curves is None:
            return proba
        if len(self.curves) == 1 and proba.shape[1] == 2:
            positive = np.clip(self.curves[0](proba[:, 1]), 0.0, 1.0)
            return np.column_stack([1 - positive, positive])
        if len(self.curves) != proba.shape[1]:
            return proba  # the model gained a class since the reference: raw scores
        out = np.column_stack([curve(proba[:, c]) for c, curve in enumerate(self.curves)])
        totals = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.where(totals > 0, out / np.where(totals > 0, totals, 1), uniform)


def expected_metrics(calibrated: np.ndarray, y_pred: np.ndarray, raw: np.ndarray,
                     positive: int) -> dict[str, float]:
    """Metrics from expected counts; `calibrated[i, k]` is P(label = k) for row i."""
    n, k = calibrated.shape
    if n == 0:
        return {}
    counts = np.zeros((k, k))
    for p in range(k):  # expected[t, p] = sum of P(label = t) over rows predicted p
        counts[:, p] = calibrated[y_pred == p].sum(axis=0)
    stats = per_class(counts)
    out = {"accuracy": float(np.trace(counts) / n)}
    if positive >= 0:
        for name in ("precision", "recall", "f1"):
            out[name] = float(stats[name][positive])
        auc = expected_auc(calibrated[:, positive], raw[:, positive])
        if auc is not None:
            out["roc_auc"] = auc
        return out
    for name in ("precision", "recall", "f1"):
        out[name] = float(stats[name].mean())  # macro
    aucs = [expected_auc(calibrated[:, c], raw[:, c]) for c in range(k)]
    if all(a is not None for a in aucs):
        out["roc_auc"] = float(np.mean([a for a in aucs if a is not None]))
    return out


def expected_auc(p: np.ndarray, score: np.ndarray) -> float | None:
    order = np.argsort(score, kind="mergesort")[::-1]
    ranked = score[order]
    cut = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(p[order])[cut]
    fps = np.cumsum(1 - p[order])[cut]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    return float(np.trapezoid(np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]))


def estimate(calibration: Calibration, proba: np.ndarray, y_pred: np.ndarray, positive: int,
             seed: int) -> dict[str, Any]:
    calibrated = calibration.apply(proba)
    out: dict[str, Any] = expected_metrics(calibrated, y_pred, proba, positive)
    if not out:
        return out
    rows = len(calibrated)
    if rows > BAND_ROWS:  # the spread shrinks as 1/sqrt(n): measure on a subsample, scale
        pick = np.random.default_rng(seed).choice(rows, BAND_ROWS, replace=False)
        band = _band(calibrated[pick], y_pred[pick], proba[pick], positive, seed)
        band = {name: sd * np.sqrt(BAND_ROWS / rows) for name, sd in band.items()}
    else:
        band = _band(calibrated, y_pred, proba, positive, seed)
    out["error"] = {name: float(BAND_SIGMAS * sd) for name, sd in band.items() if name in out}
    out["calibrated"] = calibration.fitted
    return out


def _band(calibrated: np.ndarray, y_pred: np.ndarray, raw: np.ndarray, positive: int,
          seed: int) -> dict[str, float]:
    """The spread of realized metrics if labels were drawn from the calibrated probabilities.

    All draws at once, as a (draws, rows) matrix; the score order is sorted once.
    """
    rng = np.random.default_rng(seed)
    n, k = calibrated.shape
    u = rng.random((DRAWS, n))
    if positive >= 0:
        hits = u < calibrated[:, positive]
        predicted = y_pred == positive
        tp = hits[:, predicted].sum(axis=1).astype(np.float64)
        fn = hits[:, ~predicted].sum(axis=1)
        fp = predicted.sum() - tp
        tn = (n - predicted.sum()) - fn
        values = {"accuracy": (tp + tn) / n, "precision": _safe(tp, tp + fp),
                  "recall": _safe(tp, tp + fn), "f1": _safe(2 * tp, 2 * tp + fp + fn)}
        order = np.argsort(raw[:, positive], kind="mergesort")[::-1]
        ranked = raw[order, positive]
        cut = np.r_[np.flatnonzero(np.diff(ranked)), n - 1]
        tps = np.cumsum(hits[:, order], axis=1, dtype=np.float64)[:, cut]
        fps = (cut + 1) - tps
        ok = (tps[:, -1] > 0) & (fps[:, -1] > 0)
        if ok.any():
            tpr = np.c_[np.zeros(ok.sum()), tps[ok] / tps[ok, -1:]]
            fpr = np.c_[np.zeros(ok.sum()), fps[ok] / fps[ok, -1:]]
            values["roc_auc"] = np.trapezoid(tpr, fpr, axis=1)
        return {name: float(np.std(v)) for name, v in values.items()}
    cumulative = np.cumsum(calibrated, axis=1)
    samples: dict[str, list[float]] = {}
    for draw in u:
        drawn = np.minimum((draw[:, None] > cumulative).sum(axis=1), k - 1)
        stats = per_class(confusion(drawn, y_pred, k))
        samples.setdefault("accuracy", []).append(float(np.mean(drawn == y_pred)))
        for name in ("precision", "recall", "f1"):
            samples.setdefault(name, []).append(float(stats[name].mean()))
    return {name: float(np.std(v)) for name, v in samples.items()}


def _safe(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.divide(num, den, out=np.zeros_like(num, dtype=np.float64),
                                where=den > 0)
    return out
