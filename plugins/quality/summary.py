"""quality.window: one event per final window with its numbers, for MQTT consumers and MLflow.

Only numbers, one per metric (a multiclass metric by its macro average), so the event stays
small and bounded whatever the number of classes or groups.
"""

from __future__ import annotations

import math
from typing import Any

from agent.window import Window

SCALARS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier",
           "ece", "mae", "rmse", "mape", "r2", "residual_mean")


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("macro")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _numbers(section: Any) -> dict[str, float]:
    found = {name: _number((section or {}).get(name)) for name in SCALARS}
    return {name: value for name, value in found.items() if value is not None}


def window_summary(window: Window, results: dict[str, Any]) -> dict[str, Any]:
    cost = (results.get("cost") or {}).get("value")
    return {"start": window.start, "end": window.end, "n": window.n,
            "n_labeled": int(window.labeled.sum()) if window.rows else 0,
            "metrics": _numbers(results.get("metrics")),
            "estimated": _numbers(results.get("estimated")),
            "gap": _numbers(results.get("estimation_gap")),
            "cost": _number(cost)}
