"""Per-group rates and the disparities between groups, for a binary model.

Groups smaller than `min_group_size` are reported by size only: a rate from 12 people is
noise, and a disparity built on it would be a claim nobody can support.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fairness(group: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, positive: int, *,
             min_group_size: int, max_groups: int) -> dict[str, Any]:
    names, inverse, sizes = np.unique(group.astype(str), return_inverse=True,
                                      return_counts=True)
    order = np.argsort(-sizes, kind="mergesort")[:max_groups]  # the biggest groups
    labelled = y_true >= 0
    predicted = y_pred == positive
    actual = y_true == positive
    groups: dict[str, Any] = {}
    for g in order:
        rows = inverse == g
        name, size = str(names[g]), int(sizes[g])
        if size < min_group_size:
            groups[name] = {"samples": size}
            continue
        entry: dict[str, Any] = {"samples": size,
                                 "selection_rate": float(predicted[rows].mean())}
        known = rows & labelled
        pos, neg = known & actual, known & ~actual
        if pos.sum() >= min_group_size and neg.sum() >= min_group_size:
            tp = float((predicted & pos).sum())
            fp = float((predicted & neg).sum())
            fn = float(pos.sum() - tp)
            entry["tpr"] = tp / int(pos.sum())  # Python numbers: this leaves the monitor
            entry["fpr"] = fp / int(neg.sum())
            entry["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        groups[name] = entry
    out: dict[str, Any] = {"groups": groups}
    rated = [g for g in groups.values() if "selection_rate" in g]
    if len(rated) >= 2:
        rates = [g["selection_rate"] for g in rated]
        out["demographic_parity_difference"] = max(rates) - min(rates)
    judged = [g for g in groups.values() if "tpr" in g]
    if len(judged) >= 2:
        tpr = [g["tpr"] for g in judged]
        fpr = [g["fpr"] for g in judged]
        out["equalized_odds_difference"] = max(max(tpr) - min(tpr), max(fpr) - min(fpr))
    return out
