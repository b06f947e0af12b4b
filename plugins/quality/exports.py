"""The quality monitor's series: a window's in the worker thread, from what was computed
for it; the running cost total and the threshold states on the event loop, where they
change. The monitor puts them in its exports (agent.metrics.Exports).

Written with Accumulator.put and keys built here (each label value cut to MAX_LABEL_VALUE, as
Accumulator.add would): a window's ~40 series went through add()'s keyword checks twice per
window, a fifth of the quality monitor's time on a small window."""

from __future__ import annotations

from typing import Any

from agent.metrics import MAX_LABEL_VALUE, Accumulator, MetricDef
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


def _cut(value: Any) -> str:
    return str(value)[:MAX_LABEL_VALUE]


def window_series(key: Key, window: Window, results: dict[str, Any], limit: int
                  ) -> Accumulator:
    """What the window showed (worker thread): `results` is what the monitor computed."""
    out = Accumulator()
    w = (_cut(key[0]), _cut(key[1]), _cut(key[2]))
    out.put(m.SAMPLES, w, float(window.n))
    out.put(m.LABELED, w, float(window.labeled.sum()))
    out.put(m.WINDOW_END, w, float(window.end))
    out.put(m.WINDOW_FINAL, w, float(window.final))
    _metrics(out, results.get("metrics", {}), w, window, limit)
    _estimated(out, results, w)
    if "cost" in results:
        cost = results["cost"]
        out.put(m.COST, (*w, _cut(cost["currency"])), float(cost["value"]))
    _fairness(out, results.get("fairness"), w)
    for feature, issues in window.quality.items():
        for issue, ratio in issues.items():
            out.put(m.FEATURE_ISSUES, (*w, _cut(feature), _cut(issue.removesuffix("_ratio"))),
                    float(ratio))
    return out


def judged_series(out: Accumulator, key: Key, results: dict[str, Any], cost_total: float,
                  degraded: dict[str, bool]) -> Accumulator:
    """The window's part completed on the loop: the running cost, each threshold's state."""
    w = (_cut(key[0]), _cut(key[1]), _cut(key[2]))
    if "cost" in results:
        out.put(m.COST_TOTAL, (*w, _cut(results["cost"]["currency"])), float(cost_total))
    for metric, state in degraded.items():
        out.put(m.DEGRADED, (*w, _cut(metric)), float(state))
    return out


def totals_series(compute_seconds: float) -> Accumulator:
    out = Accumulator()
    out.add(m.MONITOR_SECONDS, compute_seconds)
    return out


def _metrics(out: Accumulator, metrics: dict[str, Any], w: tuple[str, ...],
             window: Window, limit: int) -> None:
    classes, positive = window.classes, window.positive
    for name, metric in SCALARS.items():
        value = metrics.get(name)
        if isinstance(value, float):
            out.put(metric, w, float(value))
    for name, metric in PER_CLASS.items():
        value = metrics.get(name)
        if isinstance(value, float):
            out.put(metric, (*w, _cut(classes[positive])), float(value))
        elif isinstance(value, dict):
            for average in ("macro", "micro", "weighted"):
                out.put(metric, (*w, f"_{average}"), float(value[average]))
            for cls, v in list(value["per_class"].items())[:limit]:
                out.put(metric, (*w, _cut(cls)), float(v))
    for true_class, row in list(metrics.get("confusion", {}).items())[:limit]:
        for predicted, count in list(row.items())[:limit]:
            out.put(m.CONFUSION, (*w, _cut(true_class), _cut(predicted)), float(count))
    for metric, key in ((m.PREDICTION_RATIO, "prediction_class_ratio"),
                        (m.LABEL_RATIO, "label_class_ratio")):
        for cls, ratio in list(metrics.get(key, {}).items())[:limit]:
            out.put(metric, (*w, _cut(cls)), float(ratio))


def _estimated(out: Accumulator, results: dict[str, Any], w: tuple[str, ...]) -> None:
    estimated = results.get("estimated", {})
    for name, metric in ESTIMATED.items():
        if name in estimated:
            out.put(metric, w, float(estimated[name]))
    for name, error in estimated.get("error", {}).items():
        out.put(m.EST_ERROR, (*w, _cut(name)), float(error))
    if estimated:
        out.put(m.CALIBRATED, w, float(bool(estimated.get("calibrated", False))))
    for name, gap in results.get("estimation_gap", {}).items():
        out.put(m.EST_GAP, (*w, _cut(name)), float(gap))


def _fairness(out: Accumulator, found: dict[str, Any] | None, w: tuple[str, ...]) -> None:
    if not found:
        return
    for group, entry in found["groups"].items():
        for name, metric in GROUPS.items():
            if name in entry:
                out.put(metric, (*w, _cut(group)), float(entry[name]))
    extra: dict[str, MetricDef] = {"demographic_parity_difference": m.PARITY,
                                   "equalized_odds_difference": m.ODDS}
    for name, metric in extra.items():
        if name in found:
            out.put(metric, w, float(found[name]))
