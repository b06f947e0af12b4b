"""Every classification metric from one sort per class and one set of confusion counts.

Definitions follow scikit-learn's (the tests compare to 1e-9): zero_division gives 0,
averages run over the classes present in labels or predictions, PR AUC is average precision,
log loss clips probabilities to [eps, 1 - eps], Brier is halved for binary models. Where a
metric is undefined (one class only, no scores) it is left out rather than invented.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np


def compiled(public: Any, name: str) -> Any:
    """numpy's compiled `name` without the Python layers its public function puts in front
    (they cost more than the arithmetic on a small window); the public one where a numpy
    keeps it elsewhere. Both take the same positional arguments and give the same bits."""
    for module in ("numpy._core.umath", "numpy._core.multiarray", "numpy.core.umath",
                   "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return public


_clip = compiled(np.clip, "clip")  # the ufunc
_einsum = compiled(np.einsum, "c_einsum")  # np.einsum's own, without its optimize dispatch

EPS = float(np.finfo(np.float64).eps)
_sum = np.add.reduce  # x.sum() without the method's wrapper: the same pairwise sum
_min, _max = np.minimum.reduce, np.maximum.reduce  # x.min(), x.max() likewise
ECE_BINS = 10
_ZERO = np.zeros(1)  # what a curve starts from (a constant: no tuple to convert a call)
_ZERO.flags.writeable = False
SORT_ROWS = 4096  # up to this many rows, curve() sorts by argsort (see Ranked)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """counts[t, p]: labelled t, predicted p."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


@dataclass(frozen=True, slots=True)
class Ranked:
    """Rows by score, highest first, ties in reverse row order: `argsort(score, kind=
    "mergesort")[::-1]`, the order expected_auc() has always summed its weights in. The cut
    points (the last row of each distinct score) and their row counts come with it, so the
    realized ROC/PR curve and the expected AUC of the same rows share one sort."""

    order: np.ndarray
    ranked: np.ndarray  # score[order]
    cut: np.ndarray  # where the score changes (and the last row)
    rows: np.ndarray  # cut + 1: rows at or above each threshold

    @classmethod
    def of(cls, score: np.ndarray) -> Ranked:
        order = score.argsort(kind="mergesort")[::-1]
        ranked = score[order]
        cut = np.concatenate(((ranked[1:] != ranked[:-1]).nonzero()[0], (len(ranked) - 1,)))
        return cls(order, ranked, cut, cut + 1)


def curve(truth: np.ndarray, score: np.ndarray, ranked: Ranked | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives at each distinct threshold, highest score first, and the
    rows at or above it (their sum, exactly: integers in float64).

    The one sort every ranking metric shares. Order within ties does not matter: counts
    are read only where the score changes. The one exception is NaN, each its own
    threshold: with a NaN score, the order among NaNs is argsort's, as it always was.
    """
    if ranked is None and 0 < len(score) <= SORT_ROWS:
        ranked = Ranked.of(score)  # on a small window, cheaper than the key sort below
    if ranked is not None and ranked.ranked[0] == ranked.ranked[0]:  # no NaN (first if any)
        tps = truth[ranked.order].cumsum(dtype=np.float64)[ranked.cut]  # exact: < 2**53
        return tps, ranked.rows - tps, ranked.rows
    score = score + 0.0  # -0.0 becomes 0.0: one threshold, one bit pattern
    keys: np.ndarray
    hits: np.ndarray
    if len(score) and _min(score) >= 0.0 and _max(score) < 2.0:
        # For non-negative doubles the bit pattern orders like the value, so the truth bit
        # can ride below it and one direct sort replaces an argsort and two gathers.
        key = np.sort(score.view(np.int64) * 2 + truth)[::-1]
        keys, hits = key >> 1, key & 1
    else:
        order = np.argsort(score)[::-1]
        keys, hits = score[order], truth[order]
    # nonzero/concatenate/cumsum as methods and ufuncs: np.flatnonzero, np.append and the
    # function forms cost more in argument handling than in arithmetic on a small window.
    cut = np.concatenate(((keys[1:] != keys[:-1]).nonzero()[0], (len(keys) - 1,)))
    tps = hits.cumsum()[cut].astype(np.float64)
    rows = cut + 1
    return tps, rows - tps, rows


def ranking(truth: np.ndarray, score: np.ndarray, ranked: Ranked | None = None
            ) -> dict[str, float]:
    """ROC AUC and average precision from one curve; each only where it is defined.
    `ranked`: the rows' Ranked, where already made."""
    if not len(truth):
        return {}
    tps, fps, rows = curve(truth, score, ranked)
    out = {}
    positives, negatives = tps[-1], fps[-1]
    if positives > 0:
        recall = tps / positives
        before = np.concatenate((_ZERO, recall[:-1]))
        if negatives > 0:  # trapezoid(recall, fps / negatives), its heights shared
            fpr = fps / negatives
            widths = fpr - np.concatenate((_ZERO, fpr[:-1]))
            out["roc_auc"] = float(widths @ (recall + before)) / 2
        # tps / rows is tps / (tps + fps): the sum is exact, integers in float64
        out["pr_auc"] = float(np.dot(recall - before, tps / rows))
    return out


def trapezoid(tpr: np.ndarray, fpr: np.ndarray) -> float:
    """Area under the curve through (0, 0) and the points (np.trapezoid without its set-up:
    small windows are many, and its argument handling cost more than the sum)."""
    widths = fpr - np.concatenate((_ZERO, fpr[:-1]))
    heights = tpr + np.concatenate((_ZERO, tpr[:-1]))
    return float(widths @ heights) / 2


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class(counts: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(counts).astype(np.float64)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, predicted + support)  # = 2PR/(P+R), 0 where undefined
    return {"precision": precision, "recall": recall, "f1": f1, "support": support,
            "predicted": predicted}


def probabilities(scores: np.ndarray | None, rows: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """Complete score rows (`rows`: a mask; None: every row, without a copy), normalised to
    sum to 1; None if any row lacks a score."""
    if scores is None:
        return None
    chosen = scores if rows is None else scores[rows]
    if not len(chosen):
        return None
    if chosen.shape[1] == 2:  # a + b: the row sum (0.0 + a + b), but for the sign of a zero
        totals = (chosen[:, 0] + chosen[:, 1])[:, None]  # total, which is refused either way
    else:
        totals = _sum(chosen, axis=1, keepdims=True)
    # A NaN score makes its row's total NaN: totals all > 0 rules out both refusals at once.
    if not _min(totals, axis=None) > 0 and (np.isnan(chosen).any() or (totals <= 0).any()):
        return None
    normalised: np.ndarray = chosen / totals
    return normalised


def classification(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                   classes: tuple[str, ...], positive: int, *, ranked: Ranked | None = None
                   ) -> dict[str, Any]:
    """Realized metrics over labelled rows. `proba[i, k]`: probability of classes[k].
    `ranked`: the rows ranked by `proba[:, positive]`, where already made."""
    n, k = len(y_true), len(classes)
    if n == 0:
        return {}
    counts = confusion(y_true, y_pred, k)
    if positive >= 0 and k == 2:
        out = _binary(counts.tolist(), classes, positive, n)
    else:
        out = _counted(counts, classes, positive, n)
    if proba is not None:
        out.update(_probabilistic(y_true, proba, k, positive, ranked))
    return out


def _binary(counts: list[list[int]], classes: tuple[str, ...], positive: int, n: int
            ) -> dict[str, Any]:
    """_counted() of a binary model in plain Python on the four counts: the same divisions of
    the same integers (exact in float64), without a dozen array calls on a 2 x 2 matrix."""
    tp = counts[positive][positive]
    predicted = counts[0][positive] + counts[1][positive]
    support = sum(counts[positive])
    out: dict[str, Any] = {"accuracy": (counts[0][0] + counts[1][1]) / n, "samples": n,
                           "precision": tp / predicted if predicted > 0 else 0.0,
                           "recall": tp / support if support > 0 else 0.0,
                           "f1": 2 * tp / (predicted + support) if predicted + support > 0
                           else 0.0}
    out["confusion"] = {classes[t]: {classes[p]: row[p] for p in range(2) if row[p]}
                        for t, row in enumerate(counts) if any(row)}
    out["label_class_ratio"] = {classes[t]: sum(row) / n for t, row in enumerate(counts)
                                if any(row)}
    return out


def _counted(counts: np.ndarray, classes: tuple[str, ...], positive: int, n: int
             ) -> dict[str, Any]:
    """The metrics of the confusion counts (any number of classes)."""
    k = len(classes)
    stats = per_class(counts)
    present = (stats["support"] + stats["predicted"]) > 0
    out: dict[str, Any] = {"accuracy": float(np.trace(counts) / n), "samples": n}
    if positive >= 0:
        for name in ("precision", "recall", "f1"):
            out[name] = float(stats[name][positive])
    else:
        weights = stats["support"][present]
        for name in ("precision", "recall", "f1"):
            values = stats[name][present]
            out[name] = {
                "macro": float(values.mean()),
                "micro": out["accuracy"],
                "weighted": float(np.average(values, weights=weights)) if weights.sum()
                else 0.0,
                "per_class": {classes[i]: float(stats[name][i]) for i in np.flatnonzero(present)},
            }
    out["confusion"] = {classes[t]: {classes[p]: int(counts[t, p]) for p in range(k)
                                     if counts[t, p]} for t in range(k) if counts[t].any()}
    out["label_class_ratio"] = {classes[i]: float(v / n)
                                for i, v in enumerate(stats["support"]) if v}
    return out


def _probabilistic(y_true: np.ndarray, proba: np.ndarray, k: int, positive: int,
                   ranked: Ranked | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = np.arange(len(y_true))
    p_true = proba[rows, y_true]
    n = len(p_true)  # x.mean() is add.reduce(x) / n, without its wrapper; clip likewise
    out["log_loss"] = float(-_sum(np.log(_clip(p_true, EPS, 1 - EPS))) / n)
    # sum_k (onehot - p)^2 = sum_k p^2 - 2 p_true + 1, without the one-hot matrix
    brier = float(_sum(_einsum("ij,ij->i", proba, proba)) / n - 2 * (_sum(p_true) / n) + 1)
    out["brier"] = brier / 2 if k < 3 else brier
    out["ece"] = ece(proba, y_true)
    if positive >= 0:
        out.update(ranking(y_true == positive, proba[:, positive], ranked))
        return out
    aucs, aps = [], []
    for c in range(k):
        truth = y_true == c
        if not truth.any():
            continue
        found = ranking(truth, proba[:, c])
        if "roc_auc" in found:
            aucs.append(found["roc_auc"])
        aps.append(found["pr_auc"])
    if aucs and len(aucs) == len(np.unique(y_true)):
        out["roc_auc"] = float(np.mean(aucs))  # one-vs-rest, macro
    if aps:
        out["pr_auc"] = float(np.mean(aps))
    return out


def ece(proba: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top label, equal-width confidence bins (Guo 2017)."""
    if proba.shape[1] == 2:  # argmax along a 2-wide axis is slow; a comparison is not
        second = proba[:, 1]
        top: np.ndarray = second > proba[:, 0]  # bool: == y_true compares it as 0/1
        confidence = np.where(top, second, proba[:, 0])
    else:
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(len(top)), top]
    which = _clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # (lo, hi]
    # bincount weighs by float64(correct): True is 1.0. Every row lands in a bin: n in all.
    gap = np.abs(np.bincount(which, top == y_true, bins) - np.bincount(which, confidence, bins))
    return float(_sum(gap) / max(1, len(which)))


def class_ratio(codes: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    if not len(codes):
        return {}
    counts = np.bincount(codes[codes >= 0], minlength=len(classes)).tolist()
    n = len(codes)  # int / int: the correctly rounded quotient, as float64 division gives
    return {classes[i]: c / n for i, c in enumerate(counts) if c}
