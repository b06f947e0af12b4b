"""Drift statistics of one window against a reference, and the decision rule.

Every numeric statistic is computed on the reference's 100 quantile bins: one binary search
per value, then arithmetic on 100 numbers, so a check costs the same whatever the reference
size. The decision uses an effect size, not a p-value: a feature drifts when its effect is
both large enough to matter (`min_effect`) and beyond what sampling noise at this window's
size could produce for any of the features checked (the sample-size term, Bonferroni over
features). At 100,000 rows every real difference is "significant"; only a relevant one is
drift.

Effect sizes: numeric — Wasserstein-1 distance in reference standard deviations (a shift of
0.1 sigma scores 0.1); categorical — total variation distance (moving 5 points of share
between categories scores 0.05). PSI, Jensen-Shannon distance, the KS statistic and
chi-square are reported beside them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.window import Coded
from plugins.drift.correlation import (
    CORRELATION_BLOCK,
    _z,
    correlation_check,
    fences,
    n_effective,
    outside,
)
from plugins.drift.numeric import (
    COARSE,
    LOOKUP_CELLS,
    PSI_EPS,
    SCAN_BLOCK,
    TABLE_CELLS,
    TABLES_KEPT,
    Scan,
    _js_sides,
    js_distance,
    js_rows,
    numeric_lists,
    numeric_stats_many,
    scan,
    stacked,
)
from plugins.drift.profile import (
    BINS,
    OTHER,
    CategoricalProfile,
    NumericProfile,
    Profile,
)
from plugins.drift.tables import TABLES

COARSEST = 5  # a lookup keeps at least LOOKUP_CELLS >> COARSEST cells
# The window's arithmetic lives in numeric.py and correlation.py; named here as well.
__all__ = [
    "BLOCK",
    "COARSE",
    "COARSEST",
    "CORRELATION_BLOCK",
    "LOOKUP_CELLS",
    "PSI_EPS",
    "SCAN_BLOCK",
    "SLOTS_KEPT",
    "TABLES_KEPT",
    "TABLE_CELLS",
    "W_NULL_MEAN",
    "W_NULL_SD",
    "Batch",
    "Prepared",
    "PreparedCategorical",
    "PreparedNumeric",
    "Rule",
    "Scan",
    "bin_counts",
    "categorical_stats",
    "categorical_threshold",
    "categorical_values",
    "correlation_check",
    "fences",
    "js_distance",
    "js_rows",
    "n_effective",
    "numeric_lists",
    "numeric_stats",
    "numeric_stats_many",
    "numeric_threshold",
    "outside",
    "scan",
    "stacked",
    "z_for",
]

BLOCK = 16384
SLOTS_KEPT = 64  # level tuples per categorical reference
BATCHES_KEPT = 16  # sets of numeric features stacked, per reference
# Null distribution of sqrt(n_eff) * W1/sigma on 100 quantile bins (measured by simulation,
# n from 100 to 100,000): mean 1.39, standard deviation ~0.68.
W_NULL_MEAN, W_NULL_SD = 1.39, 0.68
@dataclass
class PreparedNumeric:
    profile: NumericProfile
    edges: np.ndarray = field(init=False)
    inner: np.ndarray = field(init=False)
    probs: np.ndarray = field(init=False)
    cdf: np.ndarray = field(init=False)
    gaps: np.ndarray = field(init=False)
    coarse: np.ndarray = field(init=False)
    # The replay report's histogram bars of the reference (edges, shares, bins per bar),
    # made by the monitor the first time it draws this feature.
    bars: tuple[list[float], list[float], int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.edges = np.array(self.profile.edges)
        self.inner = self.edges[1:-1]
        self.probs = np.array(self.profile.probs)
        self.cdf = np.cumsum(self.probs)
        mids = self.edges[:-1] / 2 + self.edges[1:] / 2  # halves first: no overflow
        self.gaps = np.diff(mids)
        self.coarse = self.probs.reshape(COARSE, BINS // COARSE).sum(axis=1)
        self._lookup()

    def _lookup(self) -> None:
        """A table from a fine uniform grid to bins, so binning is arithmetic, not search.

        Each grid cell knows how many edges lie at or below its start; a value then needs at
        most one step up or down. Where a cell would hold two edges (heavy ties), binary
        search stays.
        """
        self.table: np.ndarray | None = None
        low, high = float(self.inner[0]), float(self.inner[-1])
        if not high > low:
            return
        self.low, self.scale = low, LOOKUP_CELLS / (high - low)
        starts = low + np.arange(LOOKUP_CELLS + 1) / self.scale
        at_start = np.searchsorted(self.inner, starts, side="right")
        if np.diff(at_start).max() > 1:
            return
        self.table = at_start[:-1].astype(np.intp)
        self.padded = np.r_[-np.inf, self.inner, np.inf]  # padded[i + 1] == inner[i]
        # The same lookup on cells 2**shift times wider, as wide as they can be with one
        # edge at most in each: a window's scan touches that much less memory (the whole
        # table of 20 features was 160 KiB, out of the cache by the next small window).
        # The last cell also holds every value clipped into it from above, so it must not
        # hold an edge below the last one (which rounding may put past the grid's end).
        self.shift = next((s for s in range(COARSEST, 0, -1)
                           if np.diff(np.r_[at_start[:-1:1 << s], len(self.inner)]).max()
                           <= 1), 0)
        self.coarse_table = self.table[::1 << self.shift]

    def bins(self, values: np.ndarray) -> np.ndarray:
        """searchsorted(inner, values, side="right"), exactly, in a few array passes."""
        if self.table is None:
            found: np.ndarray = np.searchsorted(self.inner, values, side="right")
            return found
        with np.errstate(over="ignore"):  # a value near the float limit: clipped below
            position = (values - self.low) * self.scale
        np.clip(position, 0, LOOKUP_CELLS - 1, out=position)  # before the cast: no overflow
        cell = position.astype(np.intp)
        index = self.table[cell]
        index += values >= self.padded[index + 1]  # an edge inside the cell, below the value
        index -= values < self.padded[index]  # rounding put the value one cell too high
        return index


@dataclass
class PreparedCategorical:
    profile: CategoricalProfile
    names: list[str] = field(init=False)
    index: dict[str, int] = field(init=False)
    probs: np.ndarray = field(init=False)
    spread: float = field(init=False)  # sum of sqrt(p(1-p)): the TVD noise scale

    def __post_init__(self) -> None:
        self.names = [n for n in self.profile.freqs if n != OTHER] + [OTHER]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.probs = np.array([self.profile.freqs.get(n, 0.0) for n in self.names] + [0.0])
        self.spread = float(np.sqrt(self.probs * (1 - self.probs)).sum())
        self.tail = OTHER in self.profile.freqs
        self.present = self.probs > 0
        self.floor = np.maximum(self.probs, PSI_EPS)
        self._slots: dict[tuple[str, ...], np.ndarray] = {}
        self._sizes: set[int] = set()  # window sizes seen once

    def terms(self, rows: int) -> np.ndarray | None:
        """Every term categorical_stats sums (|p - q|, PSI's, Jensen-Shannon's two, chi-
        square's) for each slot and each count c of `rows` (q = c / rows), worked out as it
        works them out: 5 x (slots * (rows + 1)). Made the second time a window size comes
        (a count spec repeats one; a time spec seldom does), for small windows only."""
        if len(self.probs) * (rows + 1) > TABLE_CELLS:
            return None
        found: np.ndarray | None = TABLES.get(self, ("terms", rows))
        if found is not None:
            return found
        if rows not in self._sizes:
            if len(self._sizes) >= TABLES_KEPT:
                self._sizes.clear()
            self._sizes.add(rows)
            return None
        p, a = self.probs[:, None], self.floor[:, None]
        count = np.arange(rows + 1, dtype=np.float64)
        q = count / rows
        b = np.maximum(q, PSI_EPS)
        m = (p + q) / 2
        expected = a * rows
        with np.errstate(all="ignore"):  # 0 log 0: left out
            found = np.stack(np.broadcast_arrays(
                np.absolute(p - q), (b - a) * np.log(b / a),
                np.where(p > 0, np.log2(p / m) * p, 0.0),
                np.where(q > 0, np.log2(q / m) * q, 0.0),
                (count - expected) ** 2 / expected)).reshape(5, -1)
        TABLES.put(self, ("terms", rows), found, found.nbytes)
        return found

    def slots(self, levels: tuple[str, ...]) -> np.ndarray:
        """Each level's slot (unseen ones: the last, len(names)), and one past it for code
        -1 (missing: counted apart, then left out): kept per level tuple, since a stream's
        windows mostly list the same levels."""
        found = self._slots.get(levels)
        if found is None:
            if len(self._slots) >= SLOTS_KEPT:
                self._slots.clear()
            unseen = len(self.names)
            found = self._slots[levels] = np.array(
                [self.index.get(str(level), unseen) for level in levels] + [unseen + 1],
                dtype=np.intp)
        return found


@dataclass
class Prepared:
    """A reference, ready for checks (built once per reference)."""

    profile: Profile
    numeric: dict[str, PreparedNumeric] = field(init=False)
    categorical: dict[str, PreparedCategorical] = field(init=False)
    corr: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.numeric = {k: PreparedNumeric(v) for k, v in self.profile.numeric.items()}
        self.categorical = {k: PreparedCategorical(v)
                            for k, v in self.profile.categorical.items()}
        self.corr = np.array(self.profile.corr) if self.profile.corr else np.empty((0, 0))
        self.corr_names = tuple(self.profile.corr_features)
        self.corr_set = frozenset(self.corr_names)
        self._batches: dict[tuple[str, ...], Batch] = {}

    def batch(self, names: tuple[str, ...]) -> Batch:
        """These numeric features' references stacked (kept: windows mostly have the same)."""
        found = self._batches.get(names)
        if found is None:
            if len(self._batches) >= BATCHES_KEPT:  # a stream that varies its features
                self._batches.clear()  # must not grow this without end
            found = self._batches[names] = Batch([self.numeric[name] for name in names],
                                                 names, self.profile.corr_features)
        return found


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


def numeric_stats(ref: PreparedNumeric, values: np.ndarray) -> dict[str, float] | None:
    counts, n = bin_counts(ref, values)
    return numeric_stats_many(Batch([ref]), counts[None, :], np.array([n]), [values])[0]


class Batch:
    """The reference side of many numeric features stacked, so a check computes every
    feature's statistics in a few array operations instead of a few per feature."""

    def __init__(self, refs: list[PreparedNumeric], names: tuple[str, ...] = (),
                 correlated: Sequence[str] = ()) -> None:
        self.refs, self.names = refs, names
        self.row = {name: i for i, name in enumerate(names)}  # each feature's row
        self.count = [r.profile.count for r in refs]  # reference rows, per feature
        k = len(refs)
        # The columns whose centred sums a scan accumulates: the correlation check's, when
        # the batch has them all (its own column_stack then needs no second pass), else all.
        self.summed_names = (tuple(correlated) if len(correlated) >= 2
                             and set(correlated) <= set(names) else names)
        self.summed = (np.array([names.index(n) for n in self.summed_names], dtype=np.intp)
                       if names else np.arange(k))
        self.cdf = np.array([r.cdf for r in refs]).reshape(k, BINS)
        self.probs = np.array([r.probs for r in refs]).reshape(k, BINS)
        self.gaps = np.array([r.gaps for r in refs]).reshape(k, BINS - 1)
        self.coarse = np.array([r.coarse for r in refs]).reshape(k, COARSE)
        self.std = np.array([r.profile.std for r in refs], dtype=np.float64)
        self.centre = np.array([r.profile.mean for r in refs], dtype=np.float64)
        self.fence = fences(refs)
        with np.errstate(over="ignore"):  # a fence at the float limit: inf sigmas
            # The fences in reference sigmas (k x 1): where the CUSUM clips a value.
            self.z_fence = (((self.fence[0] - self.centre) / self.std)[:, None],
                            ((self.fence[1] - self.centre) / self.std)[:, None])
        self.summed_fence = self.fence[0][self.summed], self.fence[1][self.summed]
        self.summed_centre = self.centre[self.summed]
        self.coarse_floor = np.maximum(self.coarse, PSI_EPS)  # PSI's reference side
        levels, level = np.unique(self.probs, return_inverse=True)  # the distinct shares
        self.levels, self.level = levels, level.reshape(self.probs.shape)
        self.tabled = all(r.table is not None for r in refs)
        self.gappy = False  # the last block scanned had NaN (a hint: numeric._bins)
        if self.tabled:
            self._stack_lookups()

    def js_table(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Jensen-Shannon's terms p log2(p/m) and q log2(q/m) for every reference share p
        this batch has and every count c of `rows` (q = c / rows), worked out as _js_sides
        works them out: a window of that many rows (NaN in none) looks its terms up. Also
        each bin's offset in the table. Kept for TABLES_KEPT window sizes."""
        found: tuple[np.ndarray, np.ndarray] | None = TABLES.get(self, ("js", rows))
        if found is None:
            levels, level = self.levels, self.level
            shares = np.empty((2, len(levels), rows + 1))
            shares[0] = levels[:, None]
            shares[1] = np.arange(rows + 1, dtype=np.float64) / rows
            with np.errstate(all="ignore"):
                logs = shares / ((shares[0] + shares[1]) / 2)
                np.log2(logs, out=logs)
                logs *= shares
            table = np.where(shares > 0, logs, 0.0).reshape(2, -1)
            found = (table, level * (rows + 1))
            TABLES.put(self, ("js", rows), found, table.nbytes + found[1].nbytes)
        return found

    def _stack_lookups(self) -> None:
        """Every feature's lookup, side by side: one set of array passes bins them all."""
        k = len(self.refs)
        self.low = np.array([r.low for r in self.refs])
        self.scale = np.array([r.scale for r in self.refs])
        # Each feature's bins numbered after the previous feature's (and a slot for NaN):
        # one bincount counts them all, and padded[table[cell]] is the edge below.
        self.bin_offset = np.arange(k, dtype=np.intp) * (BINS + 1)
        # The coarse tables (PreparedNumeric.shift): cell >> shift, then the offset. Index
        # sized (take and bincount convert anything else first), and small all the same.
        self.table = np.concatenate([r.coarse_table + offset for r, offset
                                     in zip(self.refs, self.bin_offset, strict=True)
                                     ]).astype(np.intp)
        self.shift = np.array([r.shift for r in self.refs], dtype=np.intp)
        self.shifted = bool(self.shift.any())
        cells = LOOKUP_CELLS >> self.shift
        self.cell_offset = (np.cumsum(cells) - cells).astype(np.intp)
        self.padded = np.concatenate([r.padded for r in self.refs])
        self.above = np.r_[self.padded[1:], np.inf]  # above[i] == padded[i + 1]
        with np.errstate(over="ignore", invalid="ignore"):  # a fence at the float limit
            self.fence_cells = (float(((self.fence[0] - self.low) * self.scale).max()),
                                float(((self.fence[1] - self.low) * self.scale).min()))


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
    found = categorical_values(ref, values)
    if found is None:
        return None
    return dict(zip(("tvd", "psi", "js", "chi2", "unseen_rate"), found[:5], strict=True),
                n=float(found[5]))


def categorical_values(ref: PreparedCategorical, values: np.ndarray | Coded
                       ) -> tuple[float, float, float, float, float, int] | None:
    """categorical_stats as a tuple (TVD, PSI, JS, chi-square, unseen rate, n): what the
    monitor builds its verdict from, with no dict in between."""
    k = len(ref.names)
    other, unseen = k - 1, k  # the last slot: categories the reference never had
    if isinstance(values, Coded):  # each level's slot, and one bincount for all rows
        codes = values.codes
        found = np.bincount(ref.slots(values.levels).take(codes), minlength=k + 2)
        n = len(codes) - int(found[k + 1])  # the missing rows' slot, left out
        counts = found[:k + 1]  # integers: the same floats below as counting by weights
    else:
        counts, n = _counted(ref, values)
    if n == 0:
        return None
    if not ref.tail:  # no tail in the reference: anything else is unseen
        counts[unseen] += counts[other]
        counts[other] = 0
    used = ref.present | (counts > 0)  # a slot empty on both sides says nothing
    table = ref.terms(n)
    if table is not None:  # each used slot's terms looked up by its count, summed per row
        slot = used.nonzero()[0]
        cells = slot * (n + 1)
        cells += counts.take(slot).astype(np.intp, copy=False)
        sums = np.add.reduce(table.take(cells, axis=1), axis=1).tolist()
        half = (sums[2] + sums[3]) / 2
        return (sums[0] / 2, sums[1], math.sqrt(half if half > 0 else 0.0), sums[4],
                float(counts[unseen]) / n if used[unseen] else 0.0, n)
    counts, p, a = counts[used], ref.probs[used], ref.floor[used]
    shares = np.array((p, counts))
    q = shares[1]
    q /= n
    with np.errstate(all="ignore"):  # 0 log 0: left out
        b = np.maximum(q, PSI_EPS)
        expected = a * n
        tvd = float(np.add.reduce(np.absolute(p - q)) / 2)
        spread = b - a
        np.divide(b, a, out=b)
        np.log(b, out=b)
        spread *= b
        js = float(_js_sides(shares, (p + q) / 2, 1))
        chi = counts - expected
        chi **= 2
        chi /= expected
    return (tvd, float(np.add.reduce(spread)), js, float(np.add.reduce(chi)),
            float(q[-1]) if used[unseen] else 0.0, n)


@dataclass(frozen=True)
class Rule:
    """The decision rule's knobs (DriftConfig carries them)."""

    numeric_min_effect: float = 0.05  # W1 in reference sigmas
    categorical_min_effect: float = 0.03  # total variation distance
    correlation_min_effect: float = 0.1  # largest change of a pairwise correlation
    false_alarm_rate: float = 0.01  # per window, across all features (Bonferroni)


def z_for(rule: Rule, tests: int) -> float:
    return _z(rule.false_alarm_rate / (2 * max(1, tests)))


def numeric_threshold(rule: Rule, n: int, m: int, z: float) -> float:
    n_eff = n_effective(n, m)
    noise = (W_NULL_MEAN + z * W_NULL_SD) / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.numeric_min_effect, noise)


def categorical_threshold(rule: Rule, ref: PreparedCategorical, n: int, z: float) -> float:
    n_eff = n_effective(n, ref.profile.count)
    # TVD under no drift: mean ~0.4 * spread / sqrt(n), sd ~ spread / (3 sqrt(n)).
    noise = (0.4 + z / 3) * ref.spread / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.categorical_min_effect, noise)


