"""The quality monitor's series: a window's in the worker thread, from what was computed
for it; the running cost total and the threshold states on the event loop, where they
change. The monitor puts them in its exports (agent.metrics.Exports)."""

from __future__ import annotations

from typing import Any

from agent.metrics import Accumulator, MetricDef
from agent.window import Window
from plugins.quality import metrics as m

Key = tuple[str, str, str]  # model, model_version, window spec

SCALARS = {"accuracy": m.ACCURACY, "roc_auc": m.ROC_AUC, "pr_auc": m.PR_AUC,
           "log_loss": m.LOG_LOSS, "brier": m.BRIER, "ece": m.ECE, "mae": m.MAE,
           "rmse": m.RMSE, "mape": m.MAPE, "r2": m.R2, "residual_mean": m.RESIDUAL}
PER_CLASS = {"precision": m.PRECISION, "recall": m.RECALL, "f1": m.F1}
ESTIMATED = {"accuracy": m.EST_ACCURACY, "precision": m.EST_PRECISION, "recall": m.EST_RECALL,
             "f1": m.EST_F1, "roc_auc": m.EST_ROC_AUC}
GROUPS = {"samples": m.GROUP_SAMPLES, "selection_rate": m.GROUP_SELECTION,
          "tpr": m.GROUP_TPR, "fpr": m.GROUP_FPR, "f1": m.GROUP_F1}


def window_series(key: Key, window: Window, results: dict[str, Any], limit: int
                  ) -> Accumulator:
    """What the window showed (worker thread): `results` is what the monitor computed."""
    out = Accumulator()
    labels = dict(zip(("model", "model_version", "window"), key, strict=True))
    out.add(m.SAMPLES, window.n, **labels)
    out.add(m.LABELED, int(window.labeled.sum()), **labels)
    out.add(m.WINDOW_END, window.end, **labels)
    out.add(m.WINDOW_FINAL, int(window.final), **labels)
    _metrics(out, results.get("metrics", {}), labels, window, limit)
    _estimated(out, results, labels)
    if "cost" in results:
        cost = results["cost"]
        out.add(m.COST, cost["value"], currency=cost["currency"], **labels)
    _fairness(out, results.get("fairness"), labels)
    for feature, issues in window.quality.items():
        for issue, ratio in issues.items():
            out.add(m.FEATURE_ISSUES, ratio, feature=feature,
                    issue=issue.removesuffix("_ratio"), **labels)
    return out


def judged_series(out: Accumulator, key: Key, results: dict[str, Any], cost_total: float,
                  degraded: dict[str, bool]) -> Accumulator:
    """The window's part completed on the loop: the running cost, each threshold's state."""
    labels = dict(zip(("model", "model_version", "window"), key, strict=True))
    if "cost" in results:
        out.add(m.COST_TOTAL, cost_total, currency=results["cost"]["currency"], **labels)
    for metric, state in degraded.items():
        out.add(m.DEGRADED, int(state), metric=metric, **labels)
    return out


def totals_series(compute_seconds: float) -> Accumulator:
    out = Accumulator()
    out.add(m.MONITOR_SECONDS, compute_seconds)
    return out


def _metrics(out: Accumulator, metrics: dict[str, Any], labels: dict[str, str],
             window: Window, limit: int) -> None:
    classes, positive = window.classes, window.positive
    for name, metric in SCALARS.items():
        if isinstance(metrics.get(name), float):
            out.add(metric, metrics[name], **labels)
    for name, metric in PER_CLASS.items():
        value = metrics.get(name)
        if isinstance(value, float):
            out.add(metric, value, **{"class": classes[positive]}, **labels)
        elif isinstance(value, dict):
            for average in ("macro", "micro", "weighted"):
                out.add(metric, value[average], **{"class": f"_{average}"}, **labels)
            for cls, v in list(value["per_class"].items())[:limit]:
                out.add(metric, v, **{"class": cls}, **labels)
    for true_class, row in list(metrics.get("confusion", {}).items())[:limit]:
        for predicted, count in list(row.items())[:limit]:
            out.add(m.CONFUSION, count, true_class=true_class, predicted_class=predicted,
                    **labels)
    for metric, key in ((m.PREDICTION_RATIO, "prediction_class_ratio"),
                        (m.LABEL_RATIO, "label_class_ratio")):
        for cls, ratio in list(metrics.get(key, {}).items())[:limit]:
            out.add(metric, ratio, **{"class": cls}, **labels)


def _estimated(out: Accumulator, results: dict[str, Any], labels: dict[str, str]) -> None:
    estimated = results.get("estimated", {})
    for name, metric in ESTIMATED.items():
        if name in estimated:
            out.add(metric, estimated[name], **labels)
    for name, error in estimated.get("error", {}).items():
        out.add(m.EST_ERROR, error, metric=name, **labels)
    if estimated:
        out.add(m.CALIBRATED, int(estimated.get("calibrated", False)), **labels)
    for name, gap in results.get("estimation_gap", {}).items():
        out.add(m.EST_GAP, gap, metric=name, **labels)


def _fairness(out: Accumulator, found: dict[str, Any] | None,
              labels: dict[str, str]) -> None:
    if not found:
        return
    for group, entry in found["groups"].items():
        for name, metric in GROUPS.items():
            if name in entry:
                out.add(metric, entry[name], group=group, **labels)
    extra: dict[str, MetricDef] = {"demographic_parity_difference": m.PARITY,
                                   "equalized_odds_difference": m.ODDS}
    for name, metric in extra.items():
        if name in found:
            out.add(metric, found[name], **labels)
