"""The latest drift verdict per model, version and window spec, as Prometheus series."""

from __future__ import annotations

from agent.components import Collector
from agent.metrics import Accumulator
from plugins.drift import metrics as m
from plugins.drift.monitor import DriftMonitor

METHODS = ("wasserstein", "ks", "psi", "js", "tvd", "chi2", "unseen_rate")


class DriftStats(Collector):
    blocking = False

    def __init__(self, monitor: DriftMonitor) -> None:
        super().__init__("stats")
        self.monitor = monitor

    async def collect(self, out: Accumulator) -> None:
        monitor = self.monitor
        for key, results in monitor.latest.items():
            labels = dict(zip(("model", "model_version", "window"), key, strict=True))
            for feature, found in results["features"].items():
                for method in METHODS:
                    if method in found:
                        out.add(m.SCORE, found[method], feature=feature, method=method,
                                **labels)
                out.add(m.THRESHOLD, found["threshold"], feature=feature, **labels)
                out.add(m.FEATURE_DRIFTED, int(found["drifted"]), feature=feature, **labels)
            for rank, top in enumerate(results["top"], start=1):
                out.add(m.TOP, top["score"] / top["threshold"], rank=str(rank),
                        feature=top["feature"], **labels)
            multivariate = results["multivariate"]
            if multivariate:
                out.add(m.MULTIVARIATE, multivariate["score"], **labels)
                out.add(m.MULTIVARIATE_THRESHOLD, multivariate["threshold"], **labels)
            out.add(m.DETECTED, int(key in monitor.declared), **labels)
        for (model, version), detectors in monitor.cusums.items():
            for feature, cusum in detectors.items():
                out.add(m.SEQUENTIAL, max(cusum.up, cusum.down) / cusum.h, model=model,
                        model_version=version, feature=feature)
                out.add(m.SEQUENTIAL_ALARMS, cusum.alarms, model=model,
                        model_version=version, feature=feature)
        out.add(m.BUDGET, monitor.config.false_alarm_rate, detector="window")
        out.add(m.BUDGET, 10_000 / monitor.config.sequential_arl, detector="sequential")
        for (model, version), prepared in monitor.refs.active.items():
            profile = prepared.profile
            out.add(m.REFERENCE, profile.count, model=model, model_version=version)
            for reason in ("extreme", "non_finite"):
                out.add(m.REFERENCE_SET_ASIDE, sum(getattr(p, reason)
                                                   for p in profile.numeric.values()),
                        model=model, model_version=version, reason=reason)
        for (model, version) in monitor.refs.capturing:
            out.add(m.REFERENCE, 0, model=model, model_version=version)
        for (model, reason), count in monitor.retrain_counts.items():
            out.add(m.RETRAIN, count, model=model, reason=reason)
