"""The drift monitor's per-window computation as it was before the small-window rework
(commit cec8720), frozen: test_drift_fast.py compares the monitor with it, bit for bit.

Only the window path is here (binning, statistics, thresholds, the correlation check, the
histograms, the CUSUM step); the reference side (Prepared, Batch) and Cusum are the live
ones, whose attributes this code reads as it always did. Not for use outside the tests.
"""

# mypy: ignore-errors

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.plain import plain
from agent.window import Coded, Window
from plugins.drift import statistics as live
from plugins.drift.monitor import DriftMonitor, coded_columns, drift_columns
from plugins.drift.profile import BINS, OTHER, CategoricalProfile, fence_of
from plugins.drift.references import Step
from plugins.drift.sequential import CHUNK, Cusum
from plugins.drift.statistics import (
    BLOCK,
    COARSE,
    CORRELATION_BLOCK,
    LOOKUP_CELLS,
    PSI_EPS,
    SCAN_BLOCK,
    W_NULL_MEAN,
    W_NULL_SD,
    Batch,
    Prepared,
    PreparedCategorical,
    PreparedNumeric,
    Rule,
)

HISTOGRAMS = 3


@dataclass
class Scan:
    counts: np.ndarray
    n: np.ndarray
    total: np.ndarray
    cross: np.ndarray
    complete: int

HISTOGRAM_BARS = 5


def _fine(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """The stacked lookup as it was: every feature's 4096 cells (Batch now keeps coarser)."""
    k = len(batch.refs)
    small = np.int16 if k * (BINS + 1) < np.iinfo(np.int16).max else np.int32
    table = np.concatenate([r.table + offset for r, offset
                            in zip(batch.refs, batch.bin_offset, strict=True)]).astype(small)
    return table, np.arange(k, dtype=np.intp) * LOOKUP_CELLS


def evaluate(monitor: DriftMonitor, window: Window) -> Step:
    """DriftMonitor.evaluate as it was, for a stream whose reference is active (replay: the
    series are not wanted)."""
    ident = (window.model, window.model_version)
    step = Step(ident, monitor.first_spec.get(ident, window.spec))
    columns = drift_columns(window)
    reference = monitor.refs.resolve(step)
    assert reference is not None
    step.results = plain(_results(monitor, step, window, columns, reference))
    return step


def bin_counts(ref: PreparedNumeric, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values per reference bin (NaN left out), and how many counted."""
    counts, n = np.zeros(BINS), 0
    for start in range(0, len(values), BLOCK):  # blocks: a check's memory stays small
        block = values[start:start + BLOCK]
        missing = np.isnan(block)
        if missing.any():  # most columns have none: no copy then
            block = block[~missing]
        counts += np.bincount(ref.bins(block), minlength=BINS)
        n += len(block)
    return counts, n


def scan(batch: Batch, values: list[np.ndarray]) -> Scan:
    """Bin counts of every feature and the correlation sums (of `batch.summed` columns,
    over the rows complete in those) in one pass over the rows, a block at a time (memory
    stays a few MiB at any window size). Needs `batch.tabled`."""
    k, rows = len(values), len(values[0]) if values else 0
    counts = np.zeros(k * (BINS + 1), np.int64)
    width = len(batch.summed)
    total, cross, complete = np.zeros(width), np.zeros((width, width)), 0
    missing_per = np.zeros(k, np.int64)
    for start in range(0, rows, SCAN_BLOCK):
        block = np.column_stack([v[start:start + SCAN_BLOCK] for v in values])
        missing = np.isnan(block)
        gaps = missing.any()
        with np.errstate(over="ignore"):  # a value near the float limit: clipped below
            position = block - batch.low
            position *= batch.scale
        if gaps:
            position[missing] = 0
        # Any value beyond its fence? Two whole-block reductions on the common scale of the
        # lookup say "surely not" in the common case; the exact rows only when it may be.
        maybe_wild = not (position.min() >= batch.fence_cells[0]
                          and position.max() <= batch.fence_cells[1])
        np.clip(position, 0, LOOKUP_CELLS - 1, out=position)
        cell = position.astype(np.intp)
        del position
        table, cell_offset = _fine(batch)
        cell += cell_offset
        index = table.take(cell)
        del cell
        index += block >= batch.above.take(index)  # an edge inside the cell, below the value
        index -= block < batch.padded.take(index)  # rounding put the value one cell too high
        if gaps:
            index[missing] = np.broadcast_to(batch.bin_offset + BINS, block.shape)[missing]
            missing_per += missing.sum(axis=0)
        counts += np.bincount(index.ravel(), minlength=k * (BINS + 1))
        del index
        summed = block if len(batch.summed) == k else block.take(batch.summed, axis=1)
        incomplete = missing[:, batch.summed].any(axis=1) if gaps else None
        if maybe_wild and (wild := outside(summed, *batch.summed_fence)) is not None:
            incomplete = wild if incomplete is None else incomplete | wild
        sums, products, rows_complete = _centred_sums(summed, batch.centre[batch.summed],
                                                      incomplete)
        total += sums
        cross += products
        complete += rows_complete
    return Scan(counts.reshape(k, BINS + 1)[:, :BINS].astype(np.float64),
                rows - missing_per, total, cross, complete)


def numeric_stats_many(batch: Batch, counts: np.ndarray, n: np.ndarray,
                       values: list[np.ndarray]) -> list[dict[str, float] | None]:
    """Statistics for k features at once: `counts` (k x BINS) per reference bin, `n` (k)."""
    k = len(batch.refs)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = counts / n[:, None]
    cdf = np.cumsum(q, axis=1)
    diff = np.abs(cdf - batch.cdf)
    wasserstein = np.einsum("ij,ij->i", diff[:, :-1], batch.gaps) / batch.std
    ks = diff.max(axis=1)
    coarse = q.reshape(k, COARSE, BINS // COARSE).sum(axis=2)
    a, b = np.maximum(batch.coarse, PSI_EPS), np.maximum(coarse, PSI_EPS)
    psi = ((b - a) * np.log(b / a)).sum(axis=1)
    js = js_rows(batch.probs, q)
    # One conversion per array, not one float() per number (the same values).
    rows = zip(wasserstein.tolist(), ks.tolist(), psi.tolist(), js.tolist(),
               n.astype(np.float64).tolist(), strict=True)
    out: list[dict[str, float] | None] = []
    for w1, ks_i, psi_i, js_i, n_i in rows:
        if not n_i:
            out.append(None)
            continue
        out.append({"wasserstein": w1, "ks": ks_i, "psi": psi_i, "js": js_i, "n": n_i})
    return out


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) of each row pair, as scipy's jensenshannon."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        right = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    found: np.ndarray = np.sqrt(np.maximum(0.0, (left + right) / 2))
    return found


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 to 1), as scipy.spatial.distance.jensenshannon."""
    return float(js_rows(p[None, :], q[None, :])[0])


def _counted(ref: PreparedCategorical, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows per reference slot of an object column (None left out), and how many."""
    found: Counter[Any] = Counter()
    for start in range(0, len(values), BLOCK):  # counted in C, a block at a time
        found.update(values[start:start + BLOCK].tolist())
    found.pop(None, None)
    counts = np.zeros(len(ref.names) + 1)
    for value, count in found.items():
        counts[ref.index.get(str(value), len(ref.names))] += count
    return counts, sum(found.values())


def categorical_stats(ref: PreparedCategorical, values: np.ndarray | Coded
                      ) -> dict[str, float] | None:
    """`values`: an object array, or the same column as codes (a bincount, ~50x faster)."""
    k = len(ref.names)
    other, unseen = k - 1, k  # the last slot: categories the reference never had
    if isinstance(values, Coded):  # each level's slot, and one bincount for all rows
        slots = np.array([ref.index.get(str(level), unseen) for level in values.levels] + [0],
                         dtype=np.intp)
        counts = np.bincount(slots[values.codes], weights=values.codes >= 0, minlength=k + 1)
        n = int(np.count_nonzero(values.codes >= 0))
    else:
        counts, n = _counted(ref, values)
    if n == 0:
        return None
    if OTHER not in ref.profile.freqs:  # no tail in the reference: anything else is unseen
        counts[unseen] += counts[other]
        counts[other] = 0
    used = (ref.probs > 0) | (counts > 0)  # a slot empty on both sides says nothing
    counts, p = counts[used], ref.probs[used]
    q = counts / n
    a, b = np.maximum(p, PSI_EPS), np.maximum(q, PSI_EPS)
    expected = np.maximum(p, PSI_EPS) * n
    return {
        "tvd": float(np.abs(p - q).sum() / 2),
        "psi": float(np.sum((b - a) * np.log(b / a))),
        "js": js_distance(p, q),
        "chi2": float(((counts - expected) ** 2 / expected).sum()),
        "unseen_rate": float(q[-1]) if used[unseen] else 0.0,
        "n": float(n),
    }


def n_effective(n: int, m: int) -> float:
    return n * m / (n + m) if n and m else 0.0


def numeric_threshold(rule: Rule, n: int, m: int, z: float) -> float:
    n_eff = n_effective(n, m)
    noise = (W_NULL_MEAN + z * W_NULL_SD) / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.numeric_min_effect, noise)


def categorical_threshold(rule: Rule, ref: PreparedCategorical, n: int, z: float) -> float:
    n_eff = n_effective(n, ref.profile.count)
    # TVD under no drift: mean ~0.4 * spread / sqrt(n), sd ~ spread / (3 sqrt(n)).
    noise = (0.4 + z / 3) * ref.spread / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.categorical_min_effect, noise)


def fences(refs: list[PreparedNumeric]) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's extreme-value fence, as its reference set it (profile.fence_of)."""
    found = np.array([fence_of(r.profile) for r in refs], dtype=np.float64).reshape(-1, 2)
    return found[:, 0].copy(), found[:, 1].copy()


def outside(block: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray | None:
    """Rows with a value beyond its feature's fence, which the correlation leaves out (one
    1.5e308 would overflow the sums and blank the check); None when there is none, the
    common case, told by two column reductions."""
    with np.errstate(invalid="ignore"):
        if ((np.fmin.reduce(block, axis=0) >= low).all()
                and (np.fmax.reduce(block, axis=0) <= high).all()):
            return None
        found = ((block < low) | (block > high)).any(axis=1)
    return np.asarray(found, dtype=bool)


def _correlation(columns: dict[str, np.ndarray], names: list[str], centre: list[float],
                 fence: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int]:
    """Pearson correlation over complete rows, accumulated a block at a time: a 100,000-row
    window never needs its whole feature matrix at once. Centred on the reference means
    first, so the one-pass sums stay accurate."""
    k = len(names)
    total, cross, n = np.zeros(k), np.zeros((k, k)), 0
    rows = len(columns[names[0]])
    for start in range(0, rows, CORRELATION_BLOCK):
        block = np.column_stack([columns[name][start:start + CORRELATION_BLOCK]
                                 for name in names]).astype(np.float64, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):  # inf - inf is NaN: left out too
            incomplete = np.isnan(block.sum(axis=1))  # one pass; NaN in any column shows here
        if (wild := outside(block, *fence)) is not None:
            incomplete |= wild
        sums, products, rows = _centred_sums(block, np.asarray(centre), incomplete)
        total += sums
        cross += products
        n += rows
    return _corr_from(total, cross, n), n


def _centred_sums(block: np.ndarray, centre: np.ndarray, incomplete: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Column sums and cross products of a block's complete rows, centred on the reference
    means first (in place) so the one-pass correlation stays accurate."""
    block -= centre
    if incomplete is not None and incomplete.any():
        block = block[~incomplete]
    return np.ones(len(block)) @ block, block.T @ block, len(block)  # BLAS: 7x a strided sum


def _corr_from(total: np.ndarray, cross: np.ndarray, n: int) -> np.ndarray:
    k = len(total)
    if n < 2:
        return np.zeros((k, k))
    mean = total / n
    cov = cross / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr: np.ndarray = cov / np.outer(std, std)
    if not np.isfinite(corr).all():  # as np.nan_to_num, without its cost on every window
        corr = np.nan_to_num(corr)  # a constant column correlates with nothing: 0
    return corr


def correlation_check(prepared: Prepared, columns: dict[str, np.ndarray], rule: Rule,
                      z: float, scanned: tuple[tuple[str, ...], Scan] | None = None
                      ) -> dict[str, Any] | None:
    """`scanned`: a scan() over some features; used when they are exactly these."""
    names = prepared.profile.corr_features
    if len(names) < 2 or any(n not in columns for n in names):
        return None
    if scanned is not None and list(scanned[0]) == names:
        found = scanned[1]
        corr, n = _corr_from(found.total, found.cross, found.complete), found.complete
    else:
        corr, n = _correlation(columns, names,
                               [prepared.numeric[m].profile.mean for m in names],
                               fences([prepared.numeric[m] for m in names]))
    if n < 10:
        return None
    delta = np.abs(corr - prepared.corr)
    np.fill_diagonal(delta, 0.0)
    i, j = np.unravel_index(int(delta.argmax()), delta.shape)
    n_eff = n_effective(n, prepared.profile.count)
    pairs = len(names) * (len(names) - 1) // 2
    noise = live._z(rule.false_alarm_rate / (2 * pairs)) / math.sqrt(n_eff)
    threshold = max(rule.correlation_min_effect, noise)
    score = float(delta[i, j])
    return {"score": score, "threshold": threshold, "drifted": score > threshold,
            "pair": [names[i], names[j]], "reference": float(prepared.corr[i, j]),
            "current": float(corr[i, j]), "n": n}


def numeric_histogram(ref: PreparedNumeric, counts: np.ndarray, n: int) -> dict[str, Any]:
    """Reference against current shares on the reference's quantile bins, five to a bar
    (the reference's side worked out once per reference)."""
    edges, reference, width = _reference_bars(ref)
    current = np.asarray(counts[:len(ref.probs)], dtype=np.float64).reshape(-1, width)
    return {"edges": list(edges), "reference": list(reference),
            "current": [round(v, 5) for v in (current.sum(axis=1) / max(n, 1)).tolist()]}


def _reference_bars(ref: PreparedNumeric) -> tuple[list[float], list[float], int]:
    profile = ref.profile
    bins = len(profile.probs)
    width = HISTOGRAM_BARS if bins % HISTOGRAM_BARS == 0 else 1
    reference = np.asarray(profile.probs).reshape(-1, width).sum(axis=1)
    return ([float(e) for e in profile.edges[::width]],
            [round(v, 5) for v in reference.tolist()], width)


def categorical_histogram(profile: CategoricalProfile, column: np.ndarray) -> dict[str, Any]:
    """Reference against current shares of the reference's categories (the rest together)."""
    names = list(profile.freqs)
    seen = Counter(column.tolist())
    seen.pop(None, None)
    total = max(sum(seen.values()), 1)
    current = [seen.get(c, 0) / total for c in names]
    return {"categories": [*names, "(others)"],
            "reference": [round(profile.freqs[c], 5) for c in names] + [0.0],
            "current": [round(v, 5) for v in current] + [round(max(0.0, 1 - sum(current)), 5)]}


def advance(detectors: list[Cusum], z: np.ndarray, valid: np.ndarray | None) -> list[Cusum]:
    """Copies of k detectors, each advanced over its row of `z` (k x n, standardised), with
    a few array operations for all rows together instead of a dozen per row.

    `valid` (k x n, or None for all): False where a value is left out. Its step is set to 0,
    so the walk stands still there: the same sums, in the same order, as feeding only the
    valid values (the result is bit for bit `Cusum.update` on each row's valid values). A
    row that raises an alarm (rare: the restart after it is sequential) or a window longer
    than CHUNK goes through `Cusum.update` itself.
    """
    k, n = z.shape
    if n == 0 or n > CHUNK:
        return [_updated(d, z[i] if valid is None else z[i][valid[i]])
                for i, d in enumerate(detectors)]
    walk = np.empty((2 * k, n))
    reference = np.array([[d.k] for d in detectors])  # each detector's own k and h
    np.subtract(z, reference, out=walk[:k])
    np.negative(z, out=walk[k:])
    walk[k:] -= reference
    if valid is not None:
        walk[np.concatenate((~valid, ~valid))] = 0.0
    walk[:, 0] += [d.up for d in detectors] + [d.down for d in detectors]
    _reflected(walk)
    h = np.array([d.h for d in detectors])
    alarmed = (walk.max(axis=1).reshape(2, k) > h).any(axis=0).tolist()
    last = walk[:, -1].tolist()
    counted = [n] * k if valid is None else valid.sum(axis=1).tolist()
    return [_updated(d, z[i] if valid is None else z[i][valid[i]]) if alarmed[i]
            else Cusum(d.k, d.h, last[i], last[k + i], d.alarms, d.samples + counted[i])
            for i, d in enumerate(detectors)]


def _updated(detector: Cusum, z: np.ndarray) -> Cusum:
    copy = Cusum(detector.k, detector.h, detector.up, detector.down, detector.alarms,
                 detector.samples)
    copy.update(z)
    return copy


def _reflected(walk: np.ndarray) -> None:
    """Each row in place: its steps into the reflected random walk from the row's start."""
    np.cumsum(walk, axis=1, out=walk)
    floor = np.minimum.accumulate(walk, axis=1)
    np.minimum(floor, 0.0, out=floor)
    np.subtract(walk, floor, out=walk)


def _results(self: DriftMonitor, step: Step, window: Window, columns: dict[str, np.ndarray],
             reference: live.Prepared) -> dict[str, Any]:
    tests = len(reference.numeric) + len(reference.categorical)
    z = live.z_for(self.rule, tests)
    features: dict[str, Any] = {}
    names = tuple(name for name in reference.numeric
                  if name in columns and columns[name].dtype != object)
    values = [np.asarray(columns[name], dtype=np.float64) for name in names]
    scanned, batch = None, None
    if names:
        batch = reference.batch(names)
        if batch.tabled:  # one pass for the bins of every feature and the correlation
            found_scan = scan(batch, values)
            counts, n = found_scan.counts, found_scan.n
            scanned = (batch.summed_names, found_scan)
        else:
            binned = [bin_counts(reference.numeric[name], v)
                      for name, v in zip(names, values, strict=True)]
            counts, n = np.array([c for c, _ in binned]), np.array([m for _, m in binned])
        stats = numeric_stats_many(batch, counts, n, values)
        for name, found, column in zip(names, stats, values, strict=True):
            if found is not None:
                if self.extra.statistics:
                    self.extra.add(found, column, reference.numeric[name].profile,
                                   step.errors)
                count = reference.numeric[name].profile.count
                limit = numeric_threshold(self.rule, int(found["n"]), count, z)
                features[name] = _verdict(found, "wasserstein", limit)
    coded = coded_columns(window)
    for name, cat in reference.categorical.items():
        if name in columns and columns[name].dtype == object:
            found = categorical_stats(cat, coded.get(name, columns[name]))
            if found is not None:
                limit = categorical_threshold(self.rule, cat, int(found["n"]), z)
                features[name] = _verdict(found, "tvd", limit)
    multivariate = correlation_check(reference, columns, self.rule, z, scanned)
    ranked = sorted(features.items(), key=lambda kv: -kv[1]["ratio"])
    for name, _ in ranked[:HISTOGRAMS]:  # what the replay report draws, for the worst
        row = names.index(name) if name in names else -1
        features[name]["histogram"] = (
            numeric_histogram(reference.numeric[name], counts[row], int(n[row]))
            if row >= 0 else categorical_histogram(reference.categorical[name].profile,
                                                    columns[name]))
    top = [{"feature": n, "method": f["method"], "score": f[f["method"]],
            "threshold": f["threshold"]} for n, f in ranked[:self.config.top_features]]
    drifted = any(f["drifted"] for f in features.values()) or bool(
        multivariate and multivariate["drifted"])
    return {"features": features, "multivariate": multivariate or {}, "top": top,
            "drifted": drifted, "reference_samples": reference.profile.count,
            "sequential": _sequential(self, step, window, names, values, batch)}


def _verdict(found: dict[str, float], method: str, limit: float) -> dict[str, Any]:
    effect = found[method]
    verdict: dict[str, Any] = dict(found)
    n = int(verdict.pop("n"))
    verdict.update(method=method, threshold=limit, ratio=effect / limit,
                   drifted=effect > limit, n=n)
    return verdict


def _sequential(self: DriftMonitor, step: Step, window: Window, names: tuple[str, ...],
                values: list[np.ndarray], batch: live.Batch | None) -> dict[str, Any]:
    """CUSUM on each numeric stream, in row order, on the model's first window spec.
    Each detector is a copy, updated here and swapped in by commit(); all streams of a
    window advance together (sequential.advance: one set of array operations).

    Of a sliding spec (`1h/10m`, `500n/100n`) only windows that do not overlap the rows
    already read: the CUSUM's false-alarm rate holds for rows read once, and reading
    each row five times raised alarms on a stream that never changed."""
    if not self.config.sequential or not self._unread(step, window):
        return {}
    step.read_until = window.end
    if batch is None:
        return {}
    matrix = np.stack(values)
    finite = np.isfinite(matrix)
    with np.errstate(over="ignore"):  # near the float limit: inf, clipped below
        z = (matrix - batch.centre[:, None]) / batch.std[:, None]
    # At most the reference's fence in sigmas (~35 on normal data): one extreme value is
    # not an alarm by itself (h ~85), a run of them still is.
    np.clip(z, *batch.z_fence, out=z)
    detectors = self.cusums.get(step.ident, {})
    before = [detectors.get(name) or Cusum(self.k, self.h) for name in names]
    after = advance(before, z, None if finite.all() else finite)
    out = {}
    step.cusums = {}  # the window's detectors only (the live Step holds the stream's Cusums)
    for name, old, new in zip(names, before, after, strict=True):
        step.cusums[name] = new
        out[name] = {"statistic": max(new.up, new.down) / self.h,
                     "alarms": new.alarms - old.alarms, "total_alarms": new.alarms}
    return out
