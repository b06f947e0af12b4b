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
from plugins.quality.cbpe import Calibration, Isotonic, estimate
from plugins.quality.classification import class_ratio, classification, probabilities
from plugins.quality.config import DEFAULT_THRESHOLDS, Cost, QualityConfig, Threshold
from plugins.quality.fairness import fairness
from plugins.quality.passes import FirstPass, Handover, Labelled
from plugins.quality.regression import regression
from plugins.quality.summary import window_summary

log = structlog.get_logger("inferwatch")
Key = tuple[str, str, str]  # model, model_version, window spec
FIRST_PASSES_KEPT = 1000  # windows between their first pass and their final one
HANDOVER_CELLS = 4096  # score cells up to which a first pass keeps its arrays for the final
HANDOVER_BUDGET = 1 << 18  # score cells all waiting first passes keep (2 MiB a float copy)
_UNFITTED = Calibration(None)


def _seed(window: Window, p: np.ndarray | None) -> int:
    """The bootstrap's seed (replays are deterministic); none needed where `p`, the binary
    estimate's P(positive), says the band comes in closed form."""
    if p is not None:
        return 0
    return zlib.crc32(f"{window.model}\0{window.spec}\0{window.start}".encode())


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
        self.only_gaps: dict[str, bool] = {}  # per model: its thresholds judge gaps alone
        self.calibrations: dict[tuple[str, str], Calibration] = {}
        self.reference: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        self.reference_rows: dict[tuple[str, str], int] = {}  # in `reference`, counted
        self.first_pass: dict[tuple[Key, float], FirstPass] = {}
        self.summarized: dict[Key, deque[float]] = {}  # final windows' ends, once each
        # Streams whose last final pass found labels its first pass had not seen: their first
        # passes leave the labelled rows' estimate to the final pass (it would be wasted).
        self.relabelled: set[Key] = set()
        self.handover_cells = 0  # score cells the waiting first passes' hand-overs hold
        self.compute_seconds = 0.0

    async def process(self, window: Window) -> Sequence[Event]:
        results, first, series, relabelled = await offload(self._timed, window,
                                                           rows=window.rows)
        slot = _slot(window)  # the state changes here, on the loop, not in the thread
        key = (window.model, window.model_version, window.spec)
        if relabelled is not None:
            (self.relabelled.add if relabelled else self.relabelled.discard)(key)
        if window.final:
            self._forget(self.first_pass.pop(slot, None))
        elif first is not None:
            self._forget(self.first_pass.get(slot))
            if first.handover is not None:
                cells = first.rows * len(first.classes)
                if self.handover_cells + cells > HANDOVER_BUDGET:
                    first.handover = None  # its final pass computes what it would reuse
                else:
                    self.handover_cells += cells
            self.first_pass[slot] = first
            while len(self.first_pass) > FIRST_PASSES_KEPT:
                self._forget(self.first_pass.pop(next(iter(self.first_pass))))
        window.results.update(results)
        self.latest[key] = window
        if window.final and "cost" in results:
            self.cost_total[key] = self.cost_total.get(key, 0.0) + results["cost"]["value"]
        events = [] if window.provisional else [*self._judge(key, window),
                                                *self._summary(key, window, results)]
        if series is not None:
            self._export(key, series, results)
        return events

    def _forget(self, first: FirstPass | None) -> None:
        """A first pass leaves: the score cells its hand-over held are free again."""
        if first is not None and first.handover is not None:
            self.handover_cells -= first.rows * len(first.classes)

    def _export(self, key: Key, series: Accumulator, results: dict[str, Any]) -> None:
        """The window's series (computed with it), completed with what changed on the loop."""
        self.exports.put(key, ex.judged_series(series, key, results,
                                               self.cost_total.get(key, 0.0),
                                               self.degraded.get(key, {})))
        self.exports.put("totals", ex.totals_series(self.compute_seconds))

    def _summary(self, key: Key, window: Window, results: dict[str, Any]) -> list[Event]:
        """Once per final window: quality.window, its numbers (MLflow, MQTT consumers)."""
        if not (window.final and self.config.window_events):
            return []
        done = self.summarized.setdefault(key, deque(maxlen=FIRST_PASSES_KEPT))
        if window.end in done:
            return []
        done.append(window.end)
        return [self.ctx.event("quality.window", attributes={
            "model": window.model, "model_version": window.model_version, "window": window.spec,
        }, data=window_summary(window, results))]

    # -- computing ------------------------------------------------------------------------

    def _timed(self, window: Window) -> tuple[
            dict[str, Any], FirstPass | None, Accumulator | None, bool | None]:
        """The window's results, what its final pass may reuse, its series (None where
        nothing reads them: replay), and whether labels came since its first pass."""
        if not self.exports.wanted:  # nor its CPU counter: two system calls a pass saved
            results, first, relabelled = self._compute(window)
            return plain(results), first, None, relabelled
        began = time.thread_time()  # in this thread: the CPU this window cost
        try:
            results, first, relabelled = self._compute(window)
        finally:
            self.compute_seconds += time.thread_time() - began
        results = plain(results)  # the values exported are the values replay prints
        key = (window.model, window.model_version, window.spec)
        series = ex.window_series(key, window, results, self.config.max_classes)
        return results, first, series, relabelled

    def compute(self, window: Window) -> dict[str, Any]:
        """The window's results: what process() adds to `window.results`."""
        return self._compute(window)[0]

    def _compute(self, window: Window
                 ) -> tuple[dict[str, Any], FirstPass | None, bool | None]:
        """The window's results, what its final pass may reuse (a first pass only), and for
        a final pass after a first, whether labels came in between."""
        mask = window.labeled
        if window.task == "regression":
            return ({"metrics": regression(window.y_true[mask], window.y_pred[mask])}, None,
                    None)
        labels = hashlib.blake2b(window.y_true.tobytes(), digest_size=16).digest()
        kept = self._first_pass(window)
        handed = kept.handover if kept is not None else None
        if handed is not None and not handed.holds(window):
            handed = None
        proba = handed.proba if handed is not None else probabilities(window.scores)
        same_labels = kept is not None and kept.labels == labels
        rows = Labelled(window, mask, proba)
        calibration = None if proba is None else self._calibration(
            (window.model, window.model_version), proba.shape[1])
        reuse = handed.same_rows if handed is not None and same_labels and kept is not None \
            and kept.calibration is calibration else None
        rows.estimated = calibration is not None and bool(rows.n) and reuse is None and (
            window.final or self._ahead(window))
        if same_labels and kept is not None:  # no label came since: same numbers
            metrics = dict(kept.metrics)
        else:
            rows.realized = True
            rows.cut_rows()
            metrics = classification(rows.y_true, rows.y_pred, rows.proba, window.classes,
                                     window.positive, ranked=rows.ranked())
            metrics["prediction_class_ratio"] = class_ratio(window.y_pred, window.classes)
        out: dict[str, Any] = {"metrics": metrics}
        same_rows = None
        if proba is not None and calibration is not None:
            same_rows = self._estimate(window, (proba, rows), calibration, (kept, reuse), out)
        first = None if window.final else FirstPass(
            window.rows, window.classes, labels, metrics, out.get("estimated"),
            self.calibrations.get((window.model, window.model_version)),
            self._handover(window, proba, same_rows))
        model = self.config.models.get(window.model)
        if model is not None and model.cost is not None and rows.n:
            out["cost"] = cost(model.cost, window, mask)
        if window.group is not None and window.positive >= 0:
            out["fairness"] = fairness(window.group, window.y_true, window.y_pred,
                                       window.positive, min_group_size=self.config.min_group_size,
                                       max_groups=self.config.max_groups)
        return out, first, (not same_labels if kept is not None and window.final else None)

    def _ahead(self, window: Window) -> bool:
        """Whether a first pass estimates the labelled rows for its final pass (beside the
        realized metrics, sharing their sort): a small binary window of a stream whose labels
        are in by the first pass (else the work is wasted: the final pass redoes it)."""
        key = (window.model, window.model_version, window.spec)
        cells = window.rows * len(window.classes)
        return (window.positive >= 0 and not window.provisional and key not in self.relabelled
                and cells <= HANDOVER_CELLS and self.handover_cells + cells <= HANDOVER_BUDGET)

    def _handover(self, window: Window, proba: np.ndarray | None,
                  same_rows: dict[str, Any] | None) -> Handover | None:
        if window.provisional or window.rows * len(window.classes) > HANDOVER_CELLS:
            return None
        return Handover(window.scores, window.y_pred, window.positive, proba, same_rows)

    def _first_pass(self, window: Window) -> FirstPass | None:
        """The window's first pass, if this is its final one over the same rows (read only:
        process() drops it on the loop)."""
        kept = self.first_pass.get(_slot(window)) if window.final else None
        if kept is None or (kept.rows, kept.classes) != (window.rows, window.classes):
            return None
        return kept

    def _estimate(self, window: Window, scores: tuple[np.ndarray, Labelled],
                  calibration: Calibration,
                  before: tuple[FirstPass | None, dict[str, Any] | None],
                  out: dict[str, Any]) -> dict[str, Any] | None:
        """The label-free estimate into `out`, and on a final pass its gap to realized on the
        labelled rows. Returns the labelled rows' estimate a first pass made, else None.
        `before`: the first pass, and its labelled rows' estimate where it still holds."""
        (proba, rows), (kept, reuse) = scores, before
        p = None
        if kept is not None and kept.estimated and kept.calibration is calibration:
            estimated = dict(kept.estimated)  # the same rows and scores, the same calibration
        else:
            p = calibration.positive(proba, window.positive) if len(proba) else None
            estimated = estimate(calibration, proba, window.y_pred, window.positive,
                                 _seed(window, p), p=p)
        out["estimated"] = estimated
        same_rows = reuse
        if rows.estimated:
            rows.cut_rows()
            assert rows.proba is not None  # noqa: S101 - scores, as `proba`
            p = calibration.positive(rows.proba, window.positive) if p is None else p[rows.mask]
            try:
                same_rows = estimate(calibration, rows.proba, rows.y_pred, window.positive,
                                     _seed(window, p), ranked=rows.ranked(), p=p)
            except (ArithmeticError, ValueError):
                if window.final:
                    raise
                return None  # raw scores outside [0, 1]: the final pass fails as it did
        if not window.final:
            return same_rows
        if same_rows is None:
            return None
        gap = {}
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            real = out["metrics"].get(name)
            real = real["macro"] if isinstance(real, dict) else real
            if real is not None and name in same_rows:
                gap[name] = float(real - same_rows[name])
        out["estimation_gap"] = gap
        # The gap's own sampling error: the band of the estimate on the same rows (what
        # realized would scatter by if the estimate were right), for `_judge`.
        out["estimation_gap_error"] = {name: same_rows["error"][name] for name in gap
                                       if name in same_rows.get("error", {})}
        ident = (window.model, window.model_version)
        if not self.calibrations.get(ident, _UNFITTED).fitted:
            rows.cut_rows()
            assert rows.proba is not None  # noqa: S101 - scores, as `proba`
            self._learn(ident, rows.proba, rows.y_true)
        return None

    def _calibration(self, ident: tuple[str, str], k: int) -> Calibration:
        found = self.calibrations.get(ident)
        if found is None:
            found = self.calibrations[ident] = self._load(ident, k)
        return found

    def _learn(self, ident: tuple[str, str], proba: np.ndarray, y_true: np.ndarray) -> None:
        """The first `reference_samples` labelled rows of a model version calibrate CBPE."""
        if self.calibrations.get(ident, _UNFITTED).fitted:
            return
        parts = self.reference.setdefault(ident, [])
        parts.append((proba, y_true))
        rows = self.reference_rows[ident] = self.reference_rows.get(ident, 0) + len(y_true)
        if rows < self.config.reference_samples:
            return
        scores = np.concatenate([p[0] for p in parts])
        truth = np.concatenate([p[1] for p in parts])
        if len({p[0].shape[1] for p in parts}) != 1 or len(np.unique(truth)) < 2:
            return
        calibration = Calibration.fit(scores, truth)
        self.calibrations[ident] = calibration
        del self.reference[ident], self.reference_rows[ident]
        self._save(ident, calibration)

    def _save(self, ident: tuple[str, str], calibration: Calibration) -> None:
        assert calibration.curves is not None  # noqa: S101 - only fitted ones are saved
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
            self.only_gaps[model_name] = all(m.endswith("_gap") for m in merged)
        return found

    def _judge(self, key: Key, window: Window) -> list[Event]:
        thresholds = self._thresholds(window.model)
        values = flatten(window, only_gaps=self.only_gaps[window.model])
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
    results = window.results
    out: dict[str, tuple[float | None, int]] = {}
    _gaps(window, out)
    if only_gaps:
        return out
    labelled = int(np.count_nonzero(window.labeled))
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


def _gaps(window: Window, out: dict[str, tuple[float | None, int]]) -> None:
    """Before the first labelled rows calibrate the scores, a gap measures how far raw
    scores are from probabilities, not a change in the world: no concept-drift alarm."""
    results = window.results
    gaps = results.get("estimation_gap")
    if gaps and results.get("estimated", {}).get("calibrated"):
        labelled = int(np.count_nonzero(window.labeled))  # counted where there are gaps
        for name, value in gaps.items():
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
