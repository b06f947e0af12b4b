"""The quality monitor: each window into realized and estimated metrics, cost, fairness and
data quality; thresholds with hysteresis into `quality.degraded` / `quality.recovered`.

The arithmetic of a large window runs in a worker thread: a 100,000-row window takes tens of
milliseconds and the event loop has scrapes to answer meanwhile. A small one runs on the
loop: the hand-off would cost more than the sums.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from agent.components import Monitor
from agent.context import PluginContext
from agent.metrics import Accumulator
from agent.model import Event, Severity
from agent.plain import plain
from agent.window import Window
from agent.worker import offload
from plugins.quality import exports as ex
from plugins.quality.config import DEFAULT_THRESHOLDS, Cost, QualityConfig, Threshold
from plugins.quality.fairness import fairness
from plugins.quality.regression import regression
from plugins.quality.summary import window_summary
from tests.plugins.quality_frozen.cbpe import Calibration, Isotonic, estimate
from tests.plugins.quality_frozen.classification import (
    class_ratio,
    classification,
    probabilities,
)

log = structlog.get_logger("inferwatch")
Key = tuple[str, str, str]  # model, model_version, window spec
FIRST_PASSES_KEPT = 1000  # windows between their first pass and their final one


@dataclass
class FirstPass:
    """What a window's first (not final) pass found. Its final pass covers the same rows and
    scores: the label-free estimate holds while the calibration does, and the realized
    metrics while no label came in between (`labels`: a digest of the label column)."""

    rows: int
    classes: tuple[str, ...]
    labels: bytes
    metrics: dict[str, Any]
    estimated: dict[str, Any] | None
    calibration: Calibration | None


def _slot(window: Window) -> tuple[Key, float]:
    return (window.model, window.model_version, window.spec), window.start


class QualityMonitor(Monitor):
    provisional = True  # running views of open windows: exported, never judged
    plain_results = True  # _timed() converts them

    def __init__(self, config: QualityConfig, ctx: PluginContext) -> None:
        super().__init__("monitor")
        self.config, self.ctx = config, ctx
        self.latest: dict[Key, Window] = {}  # the latest window of each stream
        self.cost_total: dict[Key, float] = {}
        self.degraded: dict[Key, dict[str, bool]] = {}  # per stream: each metric's state
        self.thresholds: dict[str, list[tuple[str, Threshold]]] = {}  # per model, sorted
        self.calibrations: dict[tuple[str, str], Calibration] = {}
        self.reference: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        self.first_pass: dict[tuple[Key, float], FirstPass] = {}
        self.summarized: dict[Key, deque[float]] = {}  # final windows' ends, once each
        self.compute_seconds = 0.0

    async def process(self, window: Window) -> Sequence[Event]:
        results, first, series = await offload(self._timed, window, rows=window.rows)
        slot = _slot(window)  # the state changes here, on the loop, not in the thread
        if window.final:
            self.first_pass.pop(slot, None)
        elif first is not None:
            self.first_pass[slot] = first
            while len(self.first_pass) > FIRST_PASSES_KEPT:
                del self.first_pass[next(iter(self.first_pass))]
        window.results.update(results)
        key = (window.model, window.model_version, window.spec)
        self.latest[key] = window
        if window.final and "cost" in results:
            self.cost_total[key] = self.cost_total.get(key, 0.0) + results["cost"]["value"]
        events = [] if window.provisional else [*self._judge(key, window),
                                                *self._summary(key, window, results)]
        if series is not None:
            self._export(key, series, results)
        return events

    def _export(self, key: Key, series: Accumulator, results: dict[str, Any]) -> None:
        """The window's series (computed with it), completed with what changed on the loop."""
        self.exports.put(key, ex.judged_series(series, key, results,
                                               self.cost_total.get(key, 0.0),
                                               self.degraded.get(key, {})))
        self.exports.put("totals", ex.totals_series(self.compute_seconds))

    def _summary(self, key: Key, window: Window, results: dict[str, Any]) -> list[Event]:
        """Once per final window: quality.window, its numbers (MLflow, MQTT consumers)."""
        done = self.summarized.setdefault(key, deque(maxlen=FIRST_PASSES_KEPT))
        if not (window.final and self.config.window_events) or window.end in done:
            return []
        done.append(window.end)
        return [self.ctx.event("quality.window", attributes={
            "model": window.model, "model_version": window.model_version, "window": window.spec,
        }, data=window_summary(window, results))]

    # -- computing ------------------------------------------------------------------------

    def _timed(self, window: Window
               ) -> tuple[dict[str, Any], FirstPass | None, Accumulator | None]:
        """The window's results, what its final pass may reuse, and its series (None where
        nothing reads them: replay)."""
        began = time.thread_time()  # in this thread: the CPU this window cost
        try:
            results, first = self._compute(window)
        finally:
            self.compute_seconds += time.thread_time() - began
        results = plain(results)  # the values exported are the values replay prints
        if not self.exports.wanted:
            return results, first, None
        key = (window.model, window.model_version, window.spec)
        return results, first, ex.window_series(key, window, results, self.config.max_classes)

    def compute(self, window: Window) -> dict[str, Any]:
        """The window's results: what process() adds to `window.results`."""
        return self._compute(window)[0]

    def _compute(self, window: Window) -> tuple[dict[str, Any], FirstPass | None]:
        """The window's results, and what its final pass may reuse (a first pass only)."""
        if window.task == "regression":
            mask = window.labeled
            return {"metrics": regression(window.y_true[mask], window.y_pred[mask])}, None
        mask = window.labeled
        labels = hashlib.blake2b(window.y_true.tobytes(), digest_size=16).digest()
        kept = self._first_pass(window)
        proba = probabilities(window.scores)
        if kept is not None and kept.labels == labels:  # no label came since: same numbers
            metrics = dict(kept.metrics)
        else:
            metrics = classification(window.y_true[mask], window.y_pred[mask],
                                     None if proba is None else proba[mask], window.classes,
                                     window.positive)
            metrics["prediction_class_ratio"] = class_ratio(window.y_pred, window.classes)
        out: dict[str, Any] = {"metrics": metrics}
        if proba is not None:
            out.update(self._estimate(window, proba, mask, metrics, kept))
        first = None if window.final else FirstPass(
            window.rows, window.classes, labels, metrics, out.get("estimated"),
            self.calibrations.get((window.model, window.model_version)))
        model = self.config.models.get(window.model)
        if model is not None and model.cost is not None and mask.any():
            out["cost"] = cost(model.cost, window, mask)
        if window.group is not None and window.positive >= 0:
            out["fairness"] = fairness(window.group, window.y_true, window.y_pred,
                                       window.positive, min_group_size=self.config.min_group_size,
                                       max_groups=self.config.max_groups)
        return out, first

    def _first_pass(self, window: Window) -> FirstPass | None:
        """The window's first pass, if this is its final one over the same rows (read only:
        process() drops it on the loop)."""
        kept = self.first_pass.get(_slot(window)) if window.final else None
        if kept is None or (kept.rows, kept.classes) != (window.rows, window.classes):
            return None
        return kept

    def _estimate(self, window: Window, proba: np.ndarray, mask: np.ndarray,
                  realized: dict[str, Any], kept: FirstPass | None) -> dict[str, Any]:
        ident = (window.model, window.model_version)
        calibration = self._calibration(ident, proba.shape[1])
        seed = zlib.crc32(f"{window.model}\0{window.spec}\0{window.start}".encode())
        if kept is not None and kept.estimated and kept.calibration is calibration:
            estimated = dict(kept.estimated)  # the same rows and scores, the same calibration
        else:
            estimated = estimate(calibration, proba, window.y_pred, window.positive, seed)
        out: dict[str, Any] = {"estimated": estimated}
        if mask.sum() and window.final:
            labelled = proba[mask]
            same_rows = estimate(calibration, labelled, window.y_pred[mask], window.positive,
                                 seed)
            gap = {}
            for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
                real = realized.get(name)
                real = real["macro"] if isinstance(real, dict) else real
                if real is not None and name in same_rows:
                    gap[name] = float(real - same_rows[name])
            out["estimation_gap"] = gap
            # The gap's own sampling error: the band of the estimate on the same rows (what
            # realized would scatter by if the estimate were right), for `_judge`.
            out["estimation_gap_error"] = {name: same_rows["error"][name] for name in gap
                                           if name in same_rows.get("error", {})}
            self._learn(ident, labelled, window.y_true[mask])
        return out

    def _calibration(self, ident: tuple[str, str], k: int) -> Calibration:
        found = self.calibrations.get(ident)
        if found is None:
            found = self.calibrations[ident] = self._load(ident, k)
        return found

    def _learn(self, ident: tuple[str, str], proba: np.ndarray, y_true: np.ndarray) -> None:
        """The first `reference_samples` labelled rows of a model version calibrate CBPE."""
        if self.calibrations.get(ident, Calibration(None)).fitted:
            return
        parts = self.reference.setdefault(ident, [])
        parts.append((proba, y_true))
        if sum(len(p[1]) for p in parts) < self.config.reference_samples:
            return
        scores = np.concatenate([p[0] for p in parts])
        truth = np.concatenate([p[1] for p in parts])
        if len({p[0].shape[1] for p in parts}) != 1 or len(np.unique(truth)) < 2:
            return
        calibration = Calibration.fit(scores, truth)
        self.calibrations[ident] = calibration
        del self.reference[ident]
        self._save(ident, calibration)

    def _save(self, ident: tuple[str, str], calibration: Calibration) -> None:
        assert calibration.curves is not None
        body = {"model": ident[0], "model_version": ident[1],
                "curves": [c.to_json() for c in calibration.curves]}
        try:
            self.ctx.state_dir()
            self.ctx.state_file("calibration", ident).write_text(json.dumps(body),
                                                                 encoding="utf-8")
        except OSError as exc:
            log.warning("cannot save the CBPE calibration", error=str(exc))

    def _load(self, ident: tuple[str, str], k: int) -> Calibration:
        try:
            body = json.loads(self.ctx.state_file("calibration", ident).read_text(
                encoding="utf-8"))
            curves = [Isotonic(np.array(c["x"]), np.array(c["y"])) for c in body["curves"]]
        except (OSError, ValueError, KeyError, TypeError):
            return Calibration(None)
        return Calibration(curves) if len(curves) in (1, k) else Calibration(None)

    # -- judging --------------------------------------------------------------------------

    def _thresholds(self, model_name: str) -> list[tuple[str, Threshold]]:
        """The model's thresholds, merged and sorted once (the config does not change)."""
        found = self.thresholds.get(model_name)
        if found is None:
            merged = {**DEFAULT_THRESHOLDS, **self.config.thresholds}
            model = self.config.models.get(model_name)
            if model is not None:
                merged.update(model.thresholds)
            found = self.thresholds[model_name] = sorted(merged.items())
        return found

    def _judge(self, key: Key, window: Window) -> list[Event]:
        thresholds = self._thresholds(window.model)
        values = flatten(window, only_gaps=all(m.endswith("_gap") for m, _ in thresholds))
        events = []
        states = self.degraded.setdefault(key, {})
        for metric, threshold in thresholds:
            value, samples = values.get(metric, (None, 0))
            if not threshold.enabled or value is None or samples < threshold.floor(metric):
                continue
            state = states.get(metric, False)
            error = sampling_error(window, metric)
            if not state and threshold.crossed(value) and (error is None or value > error):
                states[metric] = True
                events.append(self._event("quality.degraded", Severity.WARNING, window,
                                          (metric, value, samples, error), threshold))
            elif state and threshold.cleared(value):
                states[metric] = False
                events.append(self._event("quality.recovered", Severity.INFO, window,
                                          (metric, value, samples, error), threshold))
        return events

    def _event(self, kind: str, severity: Severity, window: Window,
               reading: tuple[str, float, int, float | None], threshold: Threshold) -> Event:
        metric, value, samples, error = reading
        trigger = threshold.below if threshold.below is not None else threshold.above
        data: dict[str, Any] = {
            "value": value, "threshold": trigger, "clear": threshold.clear,
            "direction": "below" if threshold.below is not None else "above",
            "samples": samples, "window_start": window.start, "window_end": window.end,
            "final": window.final, "evidence": evidence(window),
        }
        if error is not None:
            data["sampling_error"] = error
        return self.ctx.event(kind, severity=severity, attributes={
            "model": window.model, "model_version": window.model_version,
            "window": window.spec, "metric": metric,
        }, data=data)


def sampling_error(window: Window, metric: str) -> float | None:
    """For `<m>_gap`: how far the gap could stray by chance at this many labelled rows (3
    sigma of realized around the estimate; it shrinks as 1/sqrt(rows)). A gap without one
    (a band undefined on these rows) is judged on its threshold alone."""
    if not metric.endswith("_gap"):
        return None
    found = window.results.get("estimation_gap_error", {}).get(metric.removesuffix("_gap"))
    return float(found) if found is not None else None


def flatten(window: Window, *, only_gaps: bool = False
            ) -> dict[str, tuple[float | None, int]]:
    """Threshold names: realized by name, `estimated_<m>`, `<m>_gap` (absolute), fairness
    disparities, `cost`, and `<issue>_ratio` as the worst feature's. `only_gaps`: the `_gap`
    names alone (the default thresholds judge `accuracy_gap` only)."""
    results, labelled = window.results, int(window.labeled.sum())
    out: dict[str, tuple[float | None, int]] = {}
    _gaps(results, labelled, out)
    if only_gaps:
        return out
    for name, value in results.get("metrics", {}).items():
        value = value.get("macro") if isinstance(value, dict) else value  # noqa: PLW2901
        if isinstance(value, float):
            out[name] = (value, labelled)
    for name, value in results.get("estimated", {}).items():
        if isinstance(value, float):
            out[f"estimated_{name}"] = (value, window.rows)
    for name, value in results.get("fairness", {}).items():
        if isinstance(value, float):
            out[name] = (value, window.rows)
    if "cost" in results:
        out["cost"] = (results["cost"]["value"], labelled)
    worst: dict[str, float] = {}
    for issues in window.quality.values():
        for issue, ratio in issues.items():
            worst[issue] = max(worst.get(issue, 0.0), ratio)
    for issue, ratio in worst.items():
        out[issue] = (ratio, window.rows)
    return out


def _gaps(results: dict[str, Any], labelled: int,
          out: dict[str, tuple[float | None, int]]) -> None:
    """Before the first labelled rows calibrate the scores, a gap measures how far raw
    scores are from probabilities, not a change in the world: no concept-drift alarm."""
    if results.get("estimated", {}).get("calibrated"):
        for name, value in results.get("estimation_gap", {}).items():
            out[f"{name}_gap"] = (abs(value), labelled)


def evidence(window: Window) -> dict[str, Any]:
    metrics = window.results.get("metrics", {})
    keep = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "samples")
    return {
        "metrics": {k: v for k, v in metrics.items() if k in keep},
        "estimated": {k: v for k, v in window.results.get("estimated", {}).items()
                      if k != "error"},
        "n": window.n, "n_labeled": int(window.labeled.sum()),
    }


def cost(config: Cost, window: Window, mask: np.ndarray) -> dict[str, Any]:
    y_true, y_pred, k = window.y_true[mask], window.y_pred[mask], len(window.classes)
    counts = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    if config.matrix:
        index = {name: i for i, name in enumerate(config.classes)}
        value = 0.0
        for t, p in zip(*np.nonzero(counts), strict=True):
            ti, pi = index.get(window.classes[t]), index.get(window.classes[p])
            if ti is not None and pi is not None:
                value += counts[t, p] * config.matrix[ti][pi]
    elif window.positive >= 0:
        pos, neg = window.positive, 1 - window.positive
        value = (counts[pos, pos] * config.tp + counts[neg, pos] * config.fp
                 + counts[pos, neg] * config.fn + counts[neg, neg] * config.tn)
    else:
        value = 0.0
    n = int(mask.sum())
    return {"value": float(value), "per_prediction": float(value) / n, "currency": config.currency}
