"""The quality plugin's series. Every one carries model, model_version and window."""

from __future__ import annotations

from agent.metrics import MetricDef, counter, gauge

W = ("model", "model_version", "window")


def _g(name: str, help: str, *labels: str) -> MetricDef:
    return gauge(f"inferwatch_model_{name}", help, *W, *labels)


ACCURACY = _g("accuracy", "Share of labelled predictions that were right.")
PRECISION = _g("precision", "Precision per class; class=\"_macro\"|\"_micro\"|\"_weighted\" "
               "for averages (binary: the positive class).", "class")
RECALL = _g("recall", "Recall per class, and its averages.", "class")
F1 = _g("f1", "F1 per class, and its averages.", "class")
ROC_AUC = _g("roc_auc", "ROC AUC (binary; one-vs-rest macro for multiclass).")
PR_AUC = _g("pr_auc", "Average precision (binary; macro over classes for multiclass).")
LOG_LOSS = _g("log_loss", "Cross-entropy of the scores against the labels.")
BRIER = _g("brier", "Brier score (halved for binary models, as scikit-learn).")
ECE = _g("ece", "Expected calibration error of the top label (10 equal-width bins).")
CONFUSION = _g("confusion_samples", "Labelled predictions by true and predicted class.",
               "true_class", "predicted_class")
PREDICTION_RATIO = _g("prediction_class_ratio", "Share of predictions per class (all rows).",
                      "class")
LABEL_RATIO = _g("label_class_ratio", "Share of labels per class.", "class")
MAE = _g("mae", "Mean absolute error.")
RMSE = _g("rmse", "Root mean squared error.")
MAPE = _g("mape", "Mean absolute percentage error over non-zero targets (as a ratio).")
R2 = _g("r2", "Coefficient of determination.")
RESIDUAL = _g("residual_mean", "Mean of label minus prediction.")
SAMPLES = _g("window_samples", "Predictions in the window.")
LABELED = _g("window_labeled_samples", "Predictions in the window with a label.")
WINDOW_END = _g("window_end_timestamp_seconds", "End of the window these values describe.")
WINDOW_FINAL = _g("window_final", "1 once the window's label wait is over.")
EST_ACCURACY = _g("estimated_accuracy", "Label-free (CBPE) estimate of accuracy.")
EST_PRECISION = _g("estimated_precision", "CBPE estimate of precision (multiclass: macro).")
EST_RECALL = _g("estimated_recall", "CBPE estimate of recall (multiclass: macro).")
EST_F1 = _g("estimated_f1", "CBPE estimate of F1 (multiclass: macro).")
EST_ROC_AUC = _g("estimated_roc_auc", "CBPE estimate of ROC AUC.")
EST_ERROR = _g("estimation_error", "Half-width of the estimate's band (3 sigma of sampling "
               "error).", "metric")
EST_GAP = _g("estimation_gap", "Realized minus estimated, on the labelled rows: a large gap "
             "is concept drift.", "metric")
CALIBRATED = _g("estimation_calibrated", "1 once CBPE is calibrated on a labelled reference.")
COST = _g("cost", "Cost of the window's labelled predictions under the cost matrix.",
          "currency")
COST_TOTAL = gauge("inferwatch_model_cost_cumulative",
                   "Running total of cost over final windows since the agent started.",
                   "model", "model_version", "window", "currency")
GROUP_SAMPLES = _g("group_samples", "Predictions per group.", "group")
GROUP_SELECTION = _g("group_selection_rate", "Share predicted positive per group.", "group")
GROUP_TPR = _g("group_true_positive_rate", "True positive rate per group.", "group")
GROUP_FPR = _g("group_false_positive_rate", "False positive rate per group.", "group")
GROUP_F1 = _g("group_f1", "F1 per group.", "group")
PARITY = _g("demographic_parity_difference", "Largest gap in selection rate between groups.")
ODDS = _g("equalized_odds_difference", "Largest gap in TPR or FPR between groups.")
FEATURE_ISSUES = _g("feature_issue_ratio", "Share of the window's rows with a data-quality "
                    "issue per feature.", "feature", "issue")
DEGRADED = _g("quality_degraded", "1 while a threshold is crossed (with hysteresis).",
              "metric")
MONITOR_SECONDS = counter("inferwatch_quality_compute_seconds_total",
                          "CPU-bound time spent computing window metrics.")
