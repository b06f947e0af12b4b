"""The drift plugin's series."""

from __future__ import annotations

from agent.metrics import counter, gauge

W = ("model", "model_version", "window")

SCORE = gauge("inferwatch_drift_score", "Drift statistic per feature and method "
              "(wasserstein in reference sigmas, tvd, psi, js, ks, chi2, unseen_rate).",
              *W, "feature", "method")
THRESHOLD = gauge("inferwatch_drift_threshold", "The decision threshold of the feature's "
                  "effect size at this window's sample size.", *W, "feature")
FEATURE_DRIFTED = gauge("inferwatch_drift_feature_drifted",
                        "1 if the feature's effect crossed its threshold in the window.",
                        *W, "feature")
TOP = gauge("inferwatch_drift_top_feature_score", "Effect-to-threshold ratio of the most "
            "drifting features (rank 1 is the worst).", *W, "rank", "feature")
MULTIVARIATE = gauge("inferwatch_drift_multivariate_score",
                     "Largest change of a pairwise correlation against the reference.", *W)
MULTIVARIATE_THRESHOLD = gauge("inferwatch_drift_multivariate_threshold",
                               "Its threshold at this window's sample size.", *W)
DETECTED = gauge("inferwatch_drift_detected",
                 "1 while drift is declared (K of N windows; cleared with hysteresis).", *W)
SEQUENTIAL = gauge("inferwatch_drift_sequential_statistic",
                   "CUSUM statistic over its alarm threshold (1 = alarm).",
                   "model", "model_version", "feature")
SEQUENTIAL_ALARMS = counter("inferwatch_drift_sequential_alarms_total",
                            "Sequential change alarms.", "model", "model_version", "feature")
BUDGET = gauge("inferwatch_drift_false_alarm_budget",
               "False alarms the configuration implies: per window (detector=\"window\") and "
               "per 10,000 stable samples per stream (detector=\"sequential\").", "detector")
REFERENCE = gauge("inferwatch_drift_reference_samples",
                  "Rows behind the model version's reference (0 while capturing).",
                  "model", "model_version")
REFERENCE_SET_ASIDE = gauge("inferwatch_drift_reference_values_set_aside",
                            "Values of the reference left out of its mean and spread: "
                            "extreme (far beyond the bulk) or non_finite (+-inf).",
                            "model", "model_version", "reason")
RETRAIN = counter("inferwatch_retrain_requests_total", "retrain.requested events, by reason.",
                  "model", "reason")
STATISTIC_ERRORS = counter("inferwatch_drift_statistic_errors_total",
                           "Calls of a drift statistic from a plugin that failed (it raised "
                           "or returned no finite number): that value is left out.",
                           "statistic")
