"""The drift monitor: each window against its model version's reference.

Per window: univariate effect sizes with sample-size-aware thresholds, the multivariate
correlation check, the sequential CUSUM per stream; drift is declared after K of N drifted
windows and cleared only when every effect falls below `clear_ratio` of its threshold. A
window delivered twice (before and after its labels) is judged once. The retrain policy
turns persisted drift, poor performance or an old model into one `retrain.requested` per
cool-down: an event like any other, which a sink delivers (`[plugins.webhook]` with
`match = ["retrain.requested"]` POSTs it to a pipeline trigger); the monitor does no I/O.

Threads: `evaluate` runs in a worker thread (on the loop for a window under INLINE_ROWS
rows, whose computation costs less than the hand-off) and only reads the monitor's state; what it
wants changed (a reference resolved or captured, rows kept toward a capture, CUSUM state)
comes back in a `Step` that `commit` applies on the event loop, with the series the window
gave (exports.py), which the monitor exports itself. CUSUM detectors are copied, updated
and swapped in, never changed in place.

Which reference a stream uses: references.py.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import structlog

from agent.components import Monitor
from agent.context import PluginContext
from agent.model import Event, Severity
from agent.window import Window
from agent.worker import offload
from plugins.drift import exports as ex
from plugins.drift import fleet, summary
from plugins.drift import statistics as st
from plugins.drift.columns import coded_columns, drift_columns  # also from here, as before
from plugins.drift.config import DriftConfig
from plugins.drift.extra import Extra
from plugins.drift.profile import Profile
from plugins.drift.references import References, Step
from plugins.drift.sequential import Cusums, calibrate

log = structlog.get_logger("inferwatch")
JUDGED_KEPT = 64
THRESHOLDS_KEPT = 1024  # numeric thresholds kept per (rule, z) ...
RULES_KEPT = 16  # ... for this many (rule, z): at most ~16,000 floats in all
_LIMITS: dict[tuple[st.Rule, float], dict[tuple[int, int], float]] = {}
EVENT_STREAMS = ("__score",)  # sequential alarms on these raise events; features: metrics
Ident = tuple[str, str]  # model, model_version
Key = tuple[str, str, str]  # ... and window spec


class DriftMonitor(Monitor):
    plain_results = True  # evaluate() builds them of plain Python, for both passes of a window

    def __init__(self, config: DriftConfig, ctx: PluginContext) -> None:
        super().__init__("monitor")
        self.config, self.ctx = config, ctx
        self.rule = st.Rule(config.numeric_min_effect, config.categorical_min_effect,
                            config.correlation_min_effect, config.false_alarm_rate)
        self.k, self.h = calibrate(config.sequential_arl, config.sequential_shift)
        self.refs = References(config, ctx)
        self.history: dict[Key, deque[bool]] = {}
        self.declared: dict[Key, float] = {}  # since (window end)
        self.latest: dict[Key, dict[str, Any]] = {}
        # Windows already judged (by start, end), with their results: a window comes twice.
        self.judged: dict[Key, dict[tuple[float, float], dict[str, Any] | None]] = {}
        self.summarized: dict[Key, deque[tuple[float, float]]] = {}  # final windows, once each
        self.cusums: dict[Ident, Cusums] = {}
        self.sequential_alarmed: set[tuple[Ident, str]] = set()
        self.retrain_asked: dict[Ident, float] = {}
        self.retrain_counts: dict[tuple[str, str], int] = {}
        self.first_seen: dict[Ident, float] = {}
        self.first_spec: dict[Ident, str] = {}  # the window spec the CUSUM reads
        # Where the rows the reference capture or the CUSUM has read end, per stream: a
        # window of the first spec that starts before it overlaps them (a sliding spec), as
        # do the other specs' windows; reading rows again would count each several times.
        self.read_until: dict[Ident, float] = {}
        self.extra = Extra.from_hook(ctx.hook)  # statistics other plugins add
        self.methods = (*ex.METHODS, *self.extra.names)
        self.statistic_errors: Counter[str] = Counter()
        self._reference_mark: tuple[Any, ...] | None = None
        self.exports.put("budget", ex.budget_series(config))
        self._retrain_exports()
        self._statistic_exports()

    # -- references -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.refs.load_configured()

    def set_reference(self, profile: Profile, source: str = "") -> None:
        """A profile for its model and version ("" for every version): `--reference`."""
        self.refs.give(profile, source)
        self._reference_exports()

    def load_reference(self, path: Path) -> None:
        """A profile file (`replay --reference`); ValueError if it is not one."""
        self.set_reference(Profile.load(path), source=str(path))

    def commit(self, step: Step, *, new: bool = False) -> None:
        """On the event loop: the one place a window changes the monitor's state."""
        self.first_spec.setdefault(step.ident, step.first_spec)
        self.refs.commit(step, new=new)
        if step.cusums is not None:
            self.cusums[step.ident] = step.cusums
        if step.read_until is not None:
            self.read_until[step.ident] = step.read_until
        if step.cusum_series is not None:
            self.exports.put(("cusum", step.ident), step.cusum_series)
        if step.errors:
            self.statistic_errors.update(step.errors)
            self.extra.failed(step.errors)
            self._statistic_exports()
        self._reference_exports()

    def _reference_exports(self) -> None:
        """Rebuilt when a stream's reference or capture changed, not on every window (its
        sums over every feature's profile were a fixed cost of each small window). A
        reference is made once (a new Prepared when it changes); the mark holds the objects,
        so an id cannot be reused while it is compared."""
        active = tuple(self.refs.active.items())
        mark = (tuple((k, id(v)) for k, v in active), tuple(self.refs.capturing), active)
        if self._reference_mark is not None and mark[:2] == self._reference_mark[:2]:
            return
        self._reference_mark = mark
        self.exports.put("references", ex.reference_series(self.refs.active,
                                                           self.refs.capturing))

    def _statistic_exports(self) -> None:
        self.exports.put("statistics", ex.statistic_series(self.extra.names,
                                                           self.statistic_errors))

    def _retrain_exports(self) -> None:
        self.exports.put("retrain", ex.retrain_series(self.retrain_counts))

    def replay_summary(self) -> dict[tuple[str, str], dict[str, Any]]:
        """For `inferwatch replay`'s per-stream summary: which reference each stream used."""
        return self.refs.summary(sorted(self.first_seen))

    # -- per window -----------------------------------------------------------------------

    async def process(self, window: Window) -> Sequence[Event]:
        key = (window.model, window.model_version, window.spec)
        ident = key[:2]
        new = ident not in self.first_seen
        self.first_seen.setdefault(ident, window.start)
        span = (window.start, window.end)
        judged = self.judged.setdefault(key, {})
        if span in judged:  # the same window again, now with its labels
            if judged[span] is not None:
                window.results["drift"] = judged[span]
            return await self._final(ident, window, judged[span]) + self._retrain(
                ident, window)
        step = await offload(self.evaluate, window, rows=window.rows)
        self.commit(step, new=new)
        results = judged[span] = step.results
        while len(judged) > JUDGED_KEPT:
            del judged[next(iter(judged))]
        if results is None:
            return self._retrain(ident, window)
        window.results["drift"] = results
        self.latest[key] = results
        events = self._judge(key, window, results)
        if step.series is not None:
            self.exports.put(("window", key), ex.detected(step.series, key, key in self.declared))
        return events + await self._final(ident, window, results) + self._retrain(
            ident, window)

    async def _final(self, ident: Ident, window: Window, results: dict[str, Any] | None
                     ) -> list[Event]:
        """Once per final window: its summary (drift.window) and, for a fleet, its profile."""
        if not window.final or window.provisional or results is None:
            return []
        done = self.summarized.setdefault((*ident, window.spec), deque(maxlen=JUDGED_KEPT))
        if (window.start, window.end) in done:
            return []
        done.append((window.start, window.end))
        attributes = {"model": ident[0], "model_version": ident[1], "window": window.spec}
        events = []
        if self.config.window_events:
            events.append(self.ctx.event("drift.window", attributes=attributes,
                                         data=summary.window_summary(window, results)))
        prepared = self.refs.active.get(ident)
        if self.config.fleet_profiles and prepared is not None:
            profile = await asyncio.to_thread(self._profile, window, prepared.profile)
            events.append(self.ctx.event("profile.window", attributes=attributes,
                                         data=msgspec.to_builtins(profile)))
        return events

    def _profile(self, window: Window, reference: Profile) -> fleet.WindowProfile:
        labels: list[str] = []
        predictions: list[str] = []
        if window.task == "classification" and window.classes:
            mask = window.labeled & (window.y_pred >= 0)
            names = window.classes
            labels = [names[i] for i in window.y_true[mask].tolist()]
            predictions = [names[i] for i in window.y_pred[mask].tolist()]
        return fleet.build(drift_columns(window), reference, host=self.ctx.host_id,
                           window=window.spec, end=window.end, labels=labels,
                           predictions=predictions)

    def compute(self, window: Window) -> dict[str, Any] | None:
        """evaluate() and commit() in one, for callers without an event loop (benchmarks)."""
        step = self.evaluate(window)
        self.commit(step)
        return step.results

    def evaluate(self, window: Window) -> Step:
        """This window against its reference; reads state, changes none (but the scan's
        hint on the reference's batch, `Batch.gappy`, which only orders its checks and never
        changes a result). In a worker thread, or on the loop for a small window
        (agent.worker.offload: the hand-off would cost more than the window)."""
        ident = (window.model, window.model_version)
        step = Step(ident, self.first_spec.get(ident, window.spec))
        columns = drift_columns(window)
        reference = self.refs.resolve(step)
        if reference is None:
            if self._unread(step, window):
                self.refs.capture(step, columns)
                step.read_until = window.end
            return step
        step.results = self._results(step, window, columns, reference)  # plain already
        if not self.exports.wanted:  # replay: nothing reads the series
            return step
        key = (window.model, window.model_version, window.spec)
        step.series = ex.window_series(key, step.results, self.methods)
        if step.cusums is not None:
            step.cusum_series = ex.cusum_series(ident, step.cusums)
        return step

    def _results(self, step: Step, window: Window, columns: dict[str, np.ndarray],
                 reference: st.Prepared) -> dict[str, Any]:
        """Every feature's verdict, the correlation check, the histograms of the worst, the
        CUSUM step: plain Python throughout (each array is converted once, by tolist)."""
        tests = len(reference.numeric) + len(reference.categorical)
        z = st.z_for(self.rule, tests)
        names = tuple([name for name in reference.numeric
                       if (column := columns.get(name)) is not None
                       and column.dtype.kind != "O"])
        matrix = st.stacked([columns[name] for name in names])  # rows x k, read only
        features: dict[str, Any] = {}
        batch, counts, n, scanned = None, np.empty((0, 0)), np.empty(0), None
        if names:
            batch = reference.batch(names)
            counts, n, scanned = self._numeric(features, step, batch, reference=reference,
                                               matrix=matrix, columns=columns, z=z)
        coded = coded_columns(window)
        for name, cat in reference.categorical.items():
            column = columns.get(name)
            if column is not None and column.dtype.kind == "O":
                found = st.categorical_values(cat, coded.get(name, column))
                if found is not None:  # the keys _verdict gave them, in its order
                    tvd, psi, js, chi2, unseen, n_c = found
                    limit = st.categorical_threshold(self.rule, cat, n_c, z)
                    features[name] = {"tvd": tvd, "psi": psi, "js": js, "chi2": chi2,
                                      "unseen_rate": unseen, "method": "tvd",
                                      "threshold": limit, "ratio": tvd / limit,
                                      "drifted": tvd > limit, "n": n_c}
        multivariate = st.correlation_check(reference, columns, self.rule, z, scanned)
        ranked = sorted(features.items(), key=lambda kv: -kv[1]["ratio"])
        summary.draw(ranked[:summary.HISTOGRAMS], {} if batch is None else batch.row,
                     reference, counts, n, columns=columns)  # the report draws the worst
        top = [{"feature": n, "method": f["method"], "score": f[f["method"]],
                "threshold": f["threshold"]} for n, f in ranked[:self.config.top_features]]
        drifted = True in [f["drifted"] for f in features.values()] or bool(
            multivariate and multivariate["drifted"])
        return {"features": features, "multivariate": multivariate or {}, "top": top,
                "drifted": drifted, "reference_samples": reference.profile.count,
                "sequential": self._sequential(step, window, names, matrix, batch,
                                               finite=scanned is not None and scanned[1].finite)}

    def _numeric(self, features: dict[str, Any], step: Step, batch: st.Batch, *,
                 reference: st.Prepared, matrix: np.ndarray, columns: dict[str, np.ndarray],
                 z: float) -> tuple[np.ndarray, np.ndarray,
                                    tuple[tuple[str, ...], st.Scan] | None]:
        """The numeric features' verdicts into `features`, from one scan() (the bins and
        the correlation sums) and one set of array operations for their statistics; a
        threshold is worked out once per (rows counted, reference rows). Returns the bin
        counts, the rows counted, and the scan for the correlation check."""
        names = batch.names
        if batch.tabled:  # one pass for the bins of every feature and the correlation
            found_scan = st.scan(batch, matrix)
            counts, n = found_scan.counts, found_scan.n
            scanned, full = (batch.summed_names, found_scan), found_scan.full
        else:
            binned = [st.bin_counts(reference.numeric[name],
                                    np.asarray(columns[name], dtype=np.float64))
                      for name in names]
            counts, n = np.array([c for c, _ in binned]), np.array([m for _, m in binned])
            scanned, full = None, None
        w1, ks, psi, js, counted = st.numeric_lists(batch, counts, n, full)
        limit_of = self._limits(z)
        extra = self.extra.statistics
        for name, effect, k_s, p_s, j_s, n_i, m in zip(names, w1, ks, psi, js, counted,
                                                        batch.count, strict=True):
            if not n_i:
                continue
            limit = limit_of.get((n_i, m))
            if limit is None:
                limit = limit_of[(n_i, m)] = st.numeric_threshold(self.rule, n_i, m, z)
            if extra:  # theirs after the built-in statistics, as before
                found: dict[str, Any] = {"wasserstein": effect, "ks": k_s, "psi": p_s,
                                         "js": j_s}
                self.extra.add(found, np.asarray(columns[name], dtype=np.float64),
                               reference.numeric[name].profile, step.errors)
                found.update(method="wasserstein", threshold=limit, ratio=effect / limit,
                             drifted=effect > limit, n=n_i)
            else:  # the same keys in the same order, in one dict display
                found = {"wasserstein": effect, "ks": k_s, "psi": p_s, "js": j_s,
                         "method": "wasserstein", "threshold": limit, "ratio": effect / limit,
                         "drifted": effect > limit, "n": n_i}
            features[name] = found
        return counts, n, scanned

    def _limits(self, z: float) -> dict[tuple[int, int], float]:
        """The numeric thresholds by (rows counted, reference rows) for this rule and z,
        kept across windows (a stream's windows repeat a few sizes), process-wide and
        bounded: a cache, not the monitor's state (evaluate may run in a worker thread)."""
        key = (self.rule, z)
        found = _LIMITS.get(key)
        if found is None or len(found) > THRESHOLDS_KEPT:
            if len(_LIMITS) >= RULES_KEPT:
                _LIMITS.clear()
            found = _LIMITS[key] = {}
        return found

    def _unread(self, step: Step, window: Window) -> bool:
        """A window of the stream's first spec that holds none of the rows read so far."""
        return (window.spec == step.first_spec
                and window.start >= self.read_until.get(step.ident, -math.inf))

    def _sequential(self, step: Step, window: Window, names: tuple[str, ...],
                    matrix: np.ndarray, batch: st.Batch | None, *, finite: bool = False
                    ) -> dict[str, Any]:
        """CUSUM on each numeric stream, in row order, on the model's first window spec.
        The stream's detectors are arrays (sequential.Cusums), copied, advanced together
        here (one set of array operations, no object per detector) and swapped in by
        commit(), on the rows x k matrix the scan read.

        Of a sliding spec (`1h/10m`, `500n/100n`) only windows that do not overlap the rows
        already read: the CUSUM's false-alarm rate holds for rows read once, and reading
        each row five times raised alarms on a stream that never changed."""
        if not self.config.sequential or not self._unread(step, window):
            return {}
        step.read_until = window.end
        if batch is None:
            return {}
        values = matrix.T  # k x rows, C order as stacked() made it
        valid = None if finite else np.isfinite(values)  # the scan may know: all finite
        with np.errstate(over="ignore"):  # near the float limit: inf, clipped below
            z = values - batch.centre[:, None]
            z /= batch.std[:, None]
        # At most the reference's fence in sigmas (~35 on normal data): one extreme value is
        # not an alarm by itself (h ~85), a run of them still is. np.clip's arithmetic as
        # two ufunc calls: NaN stays NaN alike, and the sign of a zero z never shows (the
        # walk takes z - k and -z - k, k > 0).
        np.maximum(z, batch.z_fence[0], out=z)
        np.minimum(z, batch.z_fence[1], out=z)
        detectors = self.cusums.get(step.ident)
        if detectors is None:
            detectors = Cusums(self.k, self.h)
        step.cusums, statistic, fired, total = detectors.advanced(
            names, z, None if valid is None or valid.all() else valid)
        return {name: {"statistic": s, "alarms": a, "total_alarms": t}
                for name, s, a, t in zip(names, statistic, fired, total, strict=True)}

    # -- judging --------------------------------------------------------------------------

    def _judge(self, key: Key, window: Window, results: dict[str, Any]) -> list[Event]:
        history = self.history.setdefault(key, deque(maxlen=self.config.persist_of))
        history.append(results["drifted"])
        events: list[Event] = []
        ident = key[:2]
        sequential = results["sequential"]
        for name in EVENT_STREAMS:  # the streams whose alarms are events (few; features: not)
            found = sequential.get(name)
            if found is None:
                continue
            marker = (ident, name)
            if found["alarms"] and marker not in self.sequential_alarmed:
                self.sequential_alarmed.add(marker)
                events.append(self._event("drift.detected", Severity.WARNING, window, results,
                                          detector="sequential", feature=name))
            elif not found["alarms"] and found["statistic"] < self.config.clear_ratio:
                self.sequential_alarmed.discard(marker)
        declared = key in self.declared
        if not declared and sum(history) >= self.config.persist_windows:
            self.declared[key] = window.end
            events.append(self._event("drift.detected", Severity.WARNING, window, results,
                                      detector="window"))
        elif declared and self._calm(results):
            del self.declared[key]
            history.clear()
            events.append(self._event("drift.resolved", Severity.INFO, window, results,
                                      detector="window"))
        results["declared"] = key in self.declared
        return events

    def _calm(self, results: dict[str, Any]) -> bool:
        ratio = self.config.clear_ratio
        multivariate = results["multivariate"]
        return (not results["drifted"]
                and all(f["ratio"] < ratio for f in results["features"].values())
                and (not multivariate
                     or multivariate["score"] < ratio * multivariate["threshold"]))

    def _event(self, kind: str, severity: Severity, window: Window, results: dict[str, Any],
               **extra: str) -> Event:
        return self.ctx.event(kind, severity=severity, attributes={
            "model": window.model, "model_version": window.model_version,
            "window": window.spec, **extra,
        }, data={
            "top_features": results["top"], "multivariate": results["multivariate"],
            "window_start": window.start, "window_end": window.end, "n": window.n,
            "rows": window.rows, "reference_samples": results["reference_samples"],
            "sequential": {k: v for k, v in results["sequential"].items() if v["alarms"]},
        })

    # -- retrain requests -----------------------------------------------------------------

    def _retrain(self, ident: Ident, window: Window) -> list[Event]:
        policy = self.config.retrain
        now = window.end
        last = self.retrain_asked.get(ident)
        if last is not None and now - last < policy.cooldown:
            return []
        reason, evidence = self._retrain_reason(ident, window)
        if reason is None:
            return []
        self.retrain_asked[ident] = now
        counted = (ident[0], reason)
        self.retrain_counts[counted] = self.retrain_counts.get(counted, 0) + 1
        self._retrain_exports()
        event = self.ctx.event("retrain.requested", severity=Severity.WARNING, attributes={
            "model": ident[0], "model_version": ident[1], "reason": reason,
        }, data={**evidence, "window": window.spec, "window_end": window.end})
        return [event]

    def _retrain_reason(self, ident: Ident, window: Window
                        ) -> tuple[str | None, dict[str, Any]]:
        policy = self.config.retrain
        now = window.end
        if policy.drift_persisted is not None:
            since = [s for k, s in self.declared.items() if k[:2] == ident]
            if since and now - min(since) >= policy.drift_persisted:
                return "drift_persisted", {"drift_since": min(since),
                                           "top_features": self._top(ident)}
        if policy.performance_below is not None:
            value = self._performance(window)
            if value is not None and value < policy.performance_below:
                return "performance", {"metric": policy.performance_metric, "value": value,
                                       "threshold": policy.performance_below}
        if policy.max_model_age is not None:
            age = now - self.first_seen.get(ident, now)
            if age >= policy.max_model_age:
                return "model_age", {"age_seconds": age}
        return None, {}

    def _top(self, ident: Ident) -> list[Any]:
        return next((r["top"] for k, r in self.latest.items() if k[:2] == ident), [])

    def _performance(self, window: Window) -> float | None:
        metric = self.config.retrain.performance_metric
        results = window.results
        value = results.get("metrics", {}).get(metric)
        if value is None and metric.startswith("estimated_"):
            value = results.get("estimated", {}).get(metric.removeprefix("estimated_"))
        if isinstance(value, dict):
            value = value.get("macro")
        if value is None and metric == "accuracy" and window.task == "classification":
            labelled = window.labeled
            if labelled.sum() >= 100:
                value = float(np.mean(window.y_true[labelled] == window.y_pred[labelled]))
        return float(value) if isinstance(value, int | float) else None

    async def stop(self) -> None:
        self.refs.warn_unused(sorted(self.first_seen))
