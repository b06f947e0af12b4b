"""Label-free performance estimates: confidence-based performance estimation (CBPE).

Scores are calibrated on a labelled reference (isotonic regression, one class against the
rest, rows renormalised), and then each unlabelled prediction contributes its calibrated
probabilities to an expected confusion matrix. Accuracy, precision, recall and F1 follow
from the expected counts; ROC AUC from expected true/false positives at each distinct raw
score. The band is 3 standard deviations of the metric over label draws from the
calibrated probabilities: in closed form where the metric allows (binary accuracy,
precision, recall, F1), else a parametric bootstrap, seeded: replays are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from plugins.quality.classification import (
    Ranked,
    _clip,
    _sum,
    compiled,
    confusion,
    per_class,
    trapezoid,
)

_interp = compiled(np.interp, "interp")  # np.interp adds only a complex check and asarray

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
        fitted: np.ndarray = _interp(score, self.x, self.y, None, None)  # y is never complex
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

    def positive(self, proba: np.ndarray, positive: int) -> np.ndarray | None:
        """`apply(proba)[:, positive]` of a binary model without the other column; None
        where apply() would take its general path (k curves, renormalised rows)."""
        if positive < 0 or proba.shape[1] != 2:
            return None
        if self.curves is None:
            found: np.ndarray = proba[:, positive]
            return found
        if len(self.curves) != 1:
            return None
        p: np.ndarray = _clip(self.curves[0](proba[:, 1]), 0.0, 1.0)
        return p if positive == 1 else 1 - p

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
    if positive >= 0:
        out = _binary_metrics(BinaryParts.of(calibrated[:, positive], y_pred, positive), n)
        auc = expected_auc(calibrated[:, positive], raw[:, positive])
        if auc is not None:
            out["roc_auc"] = auc
        return out
    counts = np.zeros((k, k))
    for p in range(k):  # expected[t, p] = sum of P(label = t) over rows predicted p
        counts[:, p] = calibrated[y_pred == p].sum(axis=0)
    stats = per_class(counts)
    out = {"accuracy": float(np.trace(counts) / n)}
    for name in ("precision", "recall", "f1"):
        out[name] = float(stats[name].mean())  # macro
    aucs = [expected_auc(calibrated[:, c], raw[:, c]) for c in range(k)]
    if all(a is not None for a in aucs):
        out["roc_auc"] = float(np.mean([a for a in aucs if a is not None]))
    return out


@dataclass(slots=True)
class BinaryParts:
    """What both the binary estimate and its band are made of, summed once: expected true
    positives among the rows predicted positive (`tp`) and among those predicted negative
    (`fn`), their Bernoulli variances, and the row counts."""

    tp: float
    fn: float
    vp: float
    vn: float
    n_pred: float
    n_neg: float

    @classmethod
    def of(cls, p: np.ndarray, y_pred: np.ndarray, positive: int) -> BinaryParts:
        """`p` is P(label = positive) per row; a row predicted neither (-1) counts in neither."""
        predicted = y_pred == positive
        negative = y_pred == 1 - positive
        p_pred, p_neg = p[predicted], p[negative]
        return cls(float(_sum(p_pred)), float(_sum(p_neg)),
                   float(_sum(p_pred * (1.0 - p_pred))), float(_sum(p_neg * (1.0 - p_neg))),
                   float(len(p_pred)), float(len(p_neg)))

    def counts(self) -> tuple[float, float, float, float]:
        """Expected (tp, fp, fn, tn)."""
        return self.tp, self.n_pred - self.tp, self.fn, self.n_neg - self.fn


def _binary_counts(p: np.ndarray, y_pred: np.ndarray, positive: int
                   ) -> tuple[float, float, float, float]:
    """Expected (tp, fp, fn, tn): `p` is P(label = positive) per row."""
    return BinaryParts.of(p, y_pred, positive).counts()


def _binary_metrics(parts: BinaryParts, n: int) -> dict[str, float]:
    tp, fp, fn, tn = parts.counts()
    return {"accuracy": float((tp + tn) / n), "precision": _div(tp, tp + fp),
            "recall": _div(tp, tp + fn), "f1": _div(2 * tp, 2 * tp + fp + fn)}


def _div(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def expected_auc(p: np.ndarray, score: np.ndarray, ranked: Ranked | None = None
                 ) -> float | None:
    """`ranked`: the rows ranked by `score`, where already made (Ranked.of(score))."""
    if ranked is None:
        ranked = Ranked.of(score)
    tps = p[ranked.order].cumsum()[ranked.cut]
    fps = ranked.rows - tps
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    return trapezoid(tps / tps[-1], fps / fps[-1])


def estimate(calibration: Calibration, proba: np.ndarray, y_pred: np.ndarray, positive: int,
             seed: int, *, ranked: Ranked | None = None, p: np.ndarray | None = None
             ) -> dict[str, Any]:
    """`ranked`: the rows ranked by `proba[:, positive]`, and `p`: calibration.positive(proba,
    positive), where the caller has them already (the same rows' realized metrics, a window's
    rows of which these are some)."""
    if p is None:
        p = calibration.positive(proba, positive) if len(proba) else None
    if p is not None:
        return binary_estimate(p, y_pred, proba[:, positive], positive, calibration.fitted,
                               ranked=ranked)
    calibrated = calibration.apply(proba)
    out: dict[str, Any] = expected_metrics(calibrated, y_pred, proba, positive)
    if not out:
        return out
    band = sampling_sd(calibrated, y_pred, proba, positive, seed, auc=out.get("roc_auc"))
    out["error"] = {name: float(BAND_SIGMAS * sd) for name, sd in band.items() if name in out}
    out["calibrated"] = calibration.fitted
    return out


def sampling_sd(calibrated: np.ndarray, y_pred: np.ndarray, raw: np.ndarray, positive: int,
                seed: int, *, auc: float | None = None) -> dict[str, float]:
    """The standard deviation of each realized metric if labels were drawn from `calibrated`.

    Binary: in closed form, exact and without Monte-Carlo noise (the concept-drift alarm
    compares a gap with this band) and in a few vector sums however small the window.
    Multiclass: a seeded parametric bootstrap on at most BAND_ROWS rows, scaled by
    sqrt(BAND_ROWS / rows) beyond. `auc`: the expected ROC AUC, where already known.
    """
    if positive >= 0:
        band = _binary_sd(calibrated[:, positive], y_pred, positive)
        if auc is None:
            auc = expected_auc(calibrated[:, positive], raw[:, positive])
        if auc is not None:
            band["roc_auc"] = _auc_sd(auc, float(calibrated[:, positive].sum()), len(raw))
        return band
    rows, scale = len(calibrated), 1.0
    if rows > BAND_ROWS:
        pick = np.random.default_rng(seed).choice(rows, BAND_ROWS, replace=False)
        calibrated, y_pred, scale = calibrated[pick], y_pred[pick], float(
            np.sqrt(BAND_ROWS / rows))
    return {name: sd * scale for name, sd in _multiclass_sd(calibrated, y_pred, seed).items()}


def binary_estimate(p: np.ndarray, y_pred: np.ndarray, raw: np.ndarray, positive: int,
                    fitted: bool, *, ranked: Ranked | None = None) -> dict[str, Any]:
    """estimate() of a binary model from the calibrated P(positive) `p` alone: the same
    numbers (the same sums, in the same order) as the general path, whose expected counts and
    band each summed the rows again, and which built the two-column matrix to read one."""
    parts = BinaryParts.of(p, y_pred, positive)
    out: dict[str, Any] = _binary_metrics(parts, len(p))
    auc = expected_auc(p, raw, ranked)
    if auc is not None:
        out["roc_auc"] = auc
    band = _band(parts, len(p))
    if auc is not None:
        band["roc_auc"] = _auc_sd(auc, float(_sum(p)), len(raw))
    out["error"] = {name: float(BAND_SIGMAS * sd) for name, sd in band.items()}
    out["calibrated"] = fitted
    return out


def _binary_sd(p: np.ndarray, y_pred: np.ndarray, positive: int) -> dict[str, float]:
    return _band(BinaryParts.of(p, y_pred, positive), len(p))


def _band(parts: BinaryParts, n: int) -> dict[str, float]:
    """Delta method on the expected counts: tp and fn are sums of independent Bernoullis
    (variances vp, vn); fp = predicted - tp and tn = negatives - fn follow from them.
    Accuracy and precision are linear in the draws (exact), recall and F1 to first order."""
    tp, fn, vp, vn, n_pred = parts.tp, parts.fn, parts.vp, parts.vn, parts.n_pred
    actual = tp + fn
    f1_den = tp + n_pred + fn  # 2tp + fp + fn
    return {
        "accuracy": math.sqrt(vp + vn) / n,
        "precision": math.sqrt(vp) / n_pred if n_pred else 0.0,
        "recall": math.sqrt(fn * fn * vp + tp * tp * vn) / actual ** 2 if actual > 0 else 0.0,
        "f1": 2 * math.sqrt((n_pred + fn) ** 2 * vp + tp * tp * vn) / f1_den ** 2
        if f1_den > 0 else 0.0,
    }


def _auc_sd(auc: float, positives: float, rows: int) -> float:
    """Hanley & McNeil's (1982) standard error at the expected AUC and class counts. Against
    simulated label draws it runs 0-25% wide: the alarm errs on the quiet side."""
    negatives = rows - positives
    if positives <= 1 or negatives <= 1:
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def _multiclass_sd(calibrated: np.ndarray, y_pred: np.ndarray, seed: int) -> dict[str, float]:
    """Macro metrics over DRAWS label draws (one draw at a time: k x k counts each)."""
    n, k = calibrated.shape
    u = np.random.default_rng(seed).random((DRAWS, n))
    cumulative = np.cumsum(calibrated, axis=1)
    samples: dict[str, list[float]] = {}
    for draw in u:
        drawn = np.minimum((draw[:, None] > cumulative).sum(axis=1), k - 1)
        stats = per_class(confusion(drawn, y_pred, k))
        samples.setdefault("accuracy", []).append(float(np.mean(drawn == y_pred)))
        for name in ("precision", "recall", "f1"):
            samples.setdefault(name, []).append(float(stats[name].mean()))
    return {name: float(np.std(v)) for name, v in samples.items()}
