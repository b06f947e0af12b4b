"""The drift monitor's series, built from what it computed and committed: a window's part in
the worker thread with the window, the rest on the event loop where their state changes.

Label values are bounded where they come from (ingest's limits on names); each is cut to
MAX_LABEL_VALUE here as Accumulator.add would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.metrics import MAX_LABEL_VALUE, Accumulator
from plugins.drift import metrics as m
from plugins.drift.config import DriftConfig
from plugins.drift.sequential import Cusum

METHODS = ("wasserstein", "ks", "psi", "js", "tvd", "chi2", "unseen_rate")
Key = tuple[str, str, str]  # model, model_version, window spec


def _cut(*values: str) -> tuple[str, ...]:
    return tuple(v[:MAX_LABEL_VALUE] for v in values)


def window_series(key: Key, results: dict[str, Any], methods: Iterable[str]) -> Accumulator:
    """One window's verdict per feature (worker thread); `methods`: the statistics exported,
    the built-in ones and those plugins added (a bounded set of names). Written straight
    into the accumulator's tables: this runs on every window, beside a check of a few ms."""
    out, w = Accumulator(), _cut(*key)
    score, threshold, drifted = ({} for _ in range(3))
    for feature, found in results["features"].items():
        labels = (*w, feature[:MAX_LABEL_VALUE])
        for method in methods:
            value = found.get(method)
            if value is not None:
                score[(*labels, method)] = float(value)
        threshold[labels] = float(found["threshold"])
        drifted[labels] = 1.0 if found["drifted"] else 0.0
    for metric, table in ((m.SCORE, score), (m.THRESHOLD, threshold),
                          (m.FEATURE_DRIFTED, drifted)):
        if table:
            out.series[metric] = table
    for rank, top in enumerate(results["top"], start=1):
        out.put(m.TOP, (*w, str(rank), *_cut(top["feature"])), top["score"] / top["threshold"])
    multivariate = results["multivariate"]
    if multivariate:
        out.put(m.MULTIVARIATE, w, float(multivariate["score"]))
        out.put(m.MULTIVARIATE_THRESHOLD, w, float(multivariate["threshold"]))
    return out


def cusum_series(ident: tuple[str, str], detectors: Mapping[str, Cusum]) -> Accumulator:
    out, stream = Accumulator(), _cut(*ident)
    for feature, cusum in detectors.items():
        labels = (*stream, *_cut(feature))
        out.put(m.SEQUENTIAL, labels, max(cusum.up, cusum.down) / cusum.h)
        out.put(m.SEQUENTIAL_ALARMS, labels, float(cusum.alarms))
    return out


def budget_series(config: DriftConfig) -> Accumulator:
    out = Accumulator()
    out.add(m.BUDGET, config.false_alarm_rate, detector="window")
    out.add(m.BUDGET, 10_000 / config.sequential_arl, detector="sequential")
    return out


def reference_series(active: Mapping[tuple[str, str], Any],
                     capturing: Iterable[tuple[str, str]]) -> Accumulator:
    """Rows behind each stream's reference (0 while capturing), and the values set aside."""
    out = Accumulator()
    for (model, version), prepared in active.items():
        profile = prepared.profile
        out.add(m.REFERENCE, profile.count, model=model, model_version=version)
        for reason in ("extreme", "non_finite"):
            out.add(m.REFERENCE_SET_ASIDE, sum(getattr(p, reason)
                                               for p in profile.numeric.values()),
                    model=model, model_version=version, reason=reason)
    for (model, version) in capturing:
        out.add(m.REFERENCE, 0, model=model, model_version=version)
    return out


def retrain_series(counts: Mapping[tuple[str, str], int]) -> Accumulator:
    out = Accumulator()
    for (model, reason), count in counts.items():
        out.add(m.RETRAIN, count, model=model, reason=reason)
    return out


def detected(acc: Accumulator, key: Key, declared: bool) -> Accumulator:
    """The window's part, completed on the loop with the K-of-N verdict judged there."""
    acc.put(m.DETECTED, _cut(*key), float(declared))
    return acc


def statistic_series(names: Iterable[str], errors: Mapping[str, int]) -> Accumulator:
    """Failures of the statistics plugins added (0 for each until one fails)."""
    out = Accumulator()
    for name in names:
        out.add(m.STATISTIC_ERRORS, errors.get(name, 0), statistic=name)
    return out
