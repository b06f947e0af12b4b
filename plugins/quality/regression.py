"""Regression metrics, as scikit-learn defines them (R² of a constant target: 1 or 0)."""

from __future__ import annotations

from typing import Any

import numpy as np


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    n = len(y_true)
    if n == 0:
        return {}
    residual = y_true - y_pred
    out: dict[str, Any] = {
        "samples": n,
        "mae": float(np.abs(residual).mean()),
        "rmse": float(np.sqrt((residual ** 2).mean())),
        "residual_mean": float(residual.mean()),
    }
    nonzero = y_true != 0
    if nonzero.any():  # a zero target has no percentage error: it is left out, and counted
        out["mape"] = float(np.abs(residual[nonzero] / y_true[nonzero]).mean())
    out["mape_excluded_samples"] = int(n - nonzero.sum())
    total = ((y_true - y_true.mean()) ** 2).sum()
    unexplained = (residual ** 2).sum()
    if total > 0:
        out["r2"] = float(1 - unexplained / total)
    else:
        out["r2"] = 1.0 if unexplained == 0 else 0.0
    return out
