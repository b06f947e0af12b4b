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

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from agent.window import Coded
from plugins.drift.profile import (
    BINS,
    OTHER,
    CategoricalProfile,
    NumericProfile,
    Profile,
    fence_of,
)

PSI_EPS = 1e-4
LOOKUP_CELLS = 4096
COARSEST = 5  # a lookup keeps at least LOOKUP_CELLS >> COARSEST cells
CORRELATION_BLOCK = 8192
SCAN_BLOCK = 4096  # rows per block of a scan: ~3 MiB at 20 features
BLOCK = 16384
SLOTS_KEPT = 64  # level tuples per categorical reference
# Terms looked up by count: tables of at most this many (share, count) cells (2 or 5 floats
# each), for this many window sizes per reference; larger windows compute them (at most
# ~0.7 MiB per numeric batch, ~1.3 MiB per categorical feature).
TABLE_CELLS, TABLES_KEPT = 1 << 12, 8
COARSE = 10  # PSI on deciles, the customary form
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
        self._terms: dict[int, np.ndarray] = {}
        self._sizes: set[int] = set()  # window sizes seen once

    def terms(self, rows: int) -> np.ndarray | None:
        """Every term categorical_stats sums (|p - q|, PSI's, Jensen-Shannon's two, chi-
        square's) for each slot and each count c of `rows` (q = c / rows), worked out as it
        works them out: 5 x (slots * (rows + 1)). Made the second time a window size comes
        (a count spec repeats one; a time spec seldom does), for small windows only."""
        found = self._terms.get(rows)
        if found is not None or len(self.probs) * (rows + 1) > TABLE_CELLS:
            return found
        if rows not in self._sizes:
            if len(self._sizes) >= TABLES_KEPT:
                self._sizes.clear()
            self._sizes.add(rows)
            return None
        if len(self._terms) >= TABLES_KEPT:
            self._terms.clear()
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
        self._terms[rows] = found
        return found

    def slots(self, levels: tuple[str, ...]) -> np.ndarray:
        """Each level's slot (unseen ones: the last), and 0 for code -1 (missing, weighed 0):
        kept per level tuple, since a stream's windows mostly list the same levels."""
        found = self._slots.get(levels)
        if found is None:
            if len(self._slots) >= SLOTS_KEPT:
                self._slots.clear()
            unseen = len(self.names)
            found = self._slots[levels] = np.array(
                [self.index.get(str(level), unseen) for level in levels] + [0], dtype=np.intp)
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
        self._batches: dict[tuple[str, ...], Batch] = {}

    def batch(self, names: tuple[str, ...]) -> Batch:
        """These numeric features' references stacked (kept: windows mostly have the same)."""
        found = self._batches.get(names)
        if found is None:
            found = self._batches[names] = Batch([self.numeric[name] for name in names],
                                                 names, self.profile.corr_features)
        return found


def n_effective(n: int, m: int) -> float:
    return n * m / (n + m) if n and m else 0.0


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
        self._js: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        levels, level = np.unique(self.probs, return_inverse=True)  # the distinct shares
        self.levels, self.level = levels, level.reshape(self.probs.shape)
        self.tabled = all(r.table is not None for r in refs)
        if self.tabled:
            self._stack_lookups()

    def js_table(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Jensen-Shannon's terms p log2(p/m) and q log2(q/m) for every reference share p
        this batch has and every count c of `rows` (q = c / rows), worked out as _js_sides
        works them out: a window of that many rows (NaN in none) looks its terms up. Also
        each bin's offset in the table. Kept for TABLES_KEPT window sizes."""
        found = self._js.get(rows)
        if found is None:
            if len(self._js) >= TABLES_KEPT:
                self._js.clear()
            levels, level = self.levels, self.level
            shares = np.empty((2, len(levels), rows + 1))
            shares[0] = levels[:, None]
            shares[1] = np.arange(rows + 1, dtype=np.float64) / rows
            with np.errstate(all="ignore"):
                logs = shares / ((shares[0] + shares[1]) / 2)
                np.log2(logs, out=logs)
                logs *= shares
            table = np.where(shares > 0, logs, 0.0).reshape(2, -1)
            found = self._js[rows] = (table, level * (rows + 1))
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


@dataclass
class Scan:
    """What one pass over a window's numeric columns found."""

    counts: np.ndarray  # k x BINS, integers (as int64: c / n is the same float either way)
    n: np.ndarray  # k: values counted (NaN left out)
    total: np.ndarray  # sums of complete rows (batch.summed), centred on the reference means
    cross: np.ndarray  # their cross products
    complete: int  # rows with every summed feature present
    finite: bool = False  # True: surely no NaN, no infinity (none missing, none past a fence)


def stacked(values: Sequence[np.ndarray]) -> np.ndarray:
    """k float columns as one rows x k matrix, what scan() and the CUSUM read: the
    transpose of a k x rows array (one C call, where column_stack is a Python loop)."""
    if not values:
        return np.empty((0, 0))
    found: np.ndarray = np.array(values, dtype=np.float64).T
    return found


def scan(batch: Batch, values: Sequence[np.ndarray] | np.ndarray) -> Scan:
    """Bin counts of every feature and the correlation sums (of `batch.summed` columns,
    over the rows complete in those) in one pass over the rows, a block at a time. `values`:
    the k columns, or stacked() of them (read, never written). Needs `batch.tabled`."""
    matrix = values if isinstance(values, np.ndarray) else stacked(values)
    k = len(batch.refs)
    rows = len(matrix)
    counts = np.zeros(k * (BINS + 1), np.int64)
    width = len(batch.summed)
    total, cross, complete = np.zeros(width), np.zeros((width, width)), 0
    missing_per = np.zeros(k, np.int64)
    finite = math.isfinite(batch.fence_cells[0]) and math.isfinite(batch.fence_cells[1])
    with np.errstate(all="ignore"):  # values near the float limit: clipped below
        for start in range(0, rows, SCAN_BLOCK):
            block = matrix[start:start + SCAN_BLOCK]
            # The binning runs on the k x rows transpose: C order as stacked() made it,
            # so that no pass mixes layouts (each value's bin is the same either way).
            missing = np.isnan(block.T)
            gaps = bool(missing.any())
            index, wild = _bins(batch, block.T, missing if gaps else None)
            finite = finite and not gaps and not wild
            if gaps:
                missing_per += np.add.reduce(missing, axis=1)
            counts += np.bincount(index.ravel(order="K"), minlength=k * (BINS + 1))
            sums, products, rows_complete = _block_sums(batch, block, missing.T if gaps
                                                        else None, wild)
            total += sums
            cross += products
            complete += rows_complete
    return Scan(counts.reshape(k, BINS + 1)[:, :BINS], rows - missing_per, total, cross,
                complete, finite)


def _bins(batch: Batch, values: np.ndarray, missing: np.ndarray | None
          ) -> tuple[np.ndarray, bool]:
    """Each value's bin (`values`: k x rows), numbered after the previous feature's (NaN:
    the slot after them), by the stacked lookup tables; `wild`: some value may lie beyond
    its fence. Two whole-block reductions on the common scale of the lookup say "surely
    not" in the common case."""
    position = values - batch.low[:, None]
    position *= batch.scale[:, None]
    if missing is not None:
        position[missing] = 0
    wild = not (np.minimum.reduce(position, axis=None) >= batch.fence_cells[0]
                and np.maximum.reduce(position, axis=None) <= batch.fence_cells[1])
    # clip(0, LOOKUP_CELLS - 1), as two ufunc calls (no NaN here; -0.0 casts to 0 alike)
    np.maximum(position, 0, out=position)
    np.minimum(position, LOOKUP_CELLS - 1, out=position)
    cell = position.astype(np.intp)
    if batch.shifted:
        cell >>= batch.shift[:, None]
    cell += batch.cell_offset[:, None]
    index = batch.table.take(cell)
    index += values >= batch.above.take(index)  # an edge inside the cell, below the value
    index -= values < batch.padded.take(index)  # rounding put the value one cell too high
    if missing is not None:
        index[missing] = np.broadcast_to(batch.bin_offset[:, None] + BINS,
                                         values.shape)[missing]
    return index, wild


def _block_sums(batch: Batch, block: np.ndarray, missing: np.ndarray | None, wild: bool
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """The correlation's centred sums over a block's rows complete in `batch.summed`."""
    k = len(batch.refs)
    # C order, as BLAS read it before: the same sums to the last bit
    summed = (np.ascontiguousarray(block) if len(batch.summed) == k
              else block.take(batch.summed, axis=1))
    incomplete = None
    if missing is not None:
        incomplete = np.logical_or.reduce(
            missing if len(batch.summed) == k else missing[:, batch.summed], axis=1)
    if wild and (outliers := outside(summed, *batch.summed_fence)) is not None:
        incomplete = outliers if incomplete is None else incomplete | outliers
    return _centred_sums(summed, batch.summed_centre, incomplete)


def numeric_stats_many(batch: Batch, counts: np.ndarray, n: np.ndarray,
                       values: Sequence[np.ndarray] = ()) -> list[dict[str, float] | None]:
    """Statistics for k features at once: `counts` (k x BINS) per reference bin, `n` (k)."""
    out: list[dict[str, float] | None] = []
    for w1, ks, psi, js, n_i in zip(*numeric_lists(batch, counts, n), strict=True):
        out.append({"wasserstein": w1, "ks": ks, "psi": psi, "js": js, "n": float(n_i)}
                   if n_i else None)
    return out


def numeric_lists(batch: Batch, counts: np.ndarray, n: np.ndarray
                  ) -> tuple[list[float], list[float], list[float], list[float], list[int]]:
    """Wasserstein, KS, PSI and Jensen-Shannon of k features as lists, and each one's n:
    numeric_stats_many without the dicts, in as few array operations as the arithmetic
    allows (each one on all k features; a small window's cost is their count)."""
    k = len(batch.refs)
    with np.errstate(all="ignore"):  # n = 0: NaN, and 0 log 0, left out below
        q = counts / n[:, None]
        diff = np.add.accumulate(q, axis=1)  # np.cumsum, without its Python wrapper
        np.subtract(diff, batch.cdf, out=diff)
        np.absolute(diff, out=diff)
        wasserstein = np.einsum("ij,ij->i", diff[:, :-1], batch.gaps) / batch.std
        ks = np.maximum.reduce(diff, axis=1)
        b = np.maximum(np.add.reduce(q.reshape(k, COARSE, BINS // COARSE), axis=2), PSI_EPS)
        spread = b - batch.coarse_floor
        np.divide(b, batch.coarse_floor, out=b)
        np.log(b, out=b)
        spread *= b
        psi = np.add.reduce(spread, axis=1)
        rows = int(n[0]) if len(n) else 0
        if (rows > 0 and len(batch.levels) * (rows + 1) <= TABLE_CELLS
                and bool((n == rows).all())):
            table, base = batch.js_table(rows)
            terms = table.take(base + counts.astype(np.intp, copy=False), axis=1)
            sides = np.add.reduce(terms, axis=2)
            js = np.sqrt(np.maximum(0.0, (sides[0] + sides[1]) / 2))
        else:  # [0]: the reference's shares, [1]: this window's
            js = _js_sides(np.array((batch.probs, q)), (batch.probs + q) / 2, 2)
    return (wasserstein.tolist(), ks.tolist(), psi.tolist(), js.tolist(),
            n.astype(np.int64).tolist())


def _js_sides(shares: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """js_rows's arithmetic on p and q stacked along axis 0 (`shares`), m = (p + q) / 2:
    each side's sum of p log2(p / m) over `axis`, in one set of operations for both."""
    logs = shares / m
    np.log2(logs, out=logs)
    logs *= shares
    sides = np.add.reduce(np.where(shares > 0, logs, 0.0), axis=axis)
    found: np.ndarray = np.sqrt(np.maximum(0.0, (sides[0] + sides[1]) / 2))
    return found


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
        present = values.codes >= 0
        counts = np.bincount(ref.slots(values.levels)[values.codes], weights=present,
                             minlength=k + 1)
        n = int(np.count_nonzero(present))
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
        slot = np.flatnonzero(used)
        sums = np.add.reduce(table.take(slot * (n + 1) + counts[slot].astype(np.intp), axis=1),
                             axis=1).tolist()
        half = (sums[2] + sums[3]) / 2
        return {"tvd": sums[0] / 2, "psi": sums[1], "js": math.sqrt(half if half > 0 else 0.0),
                "chi2": sums[4], "unseen_rate": float(counts[unseen]) / n if used[unseen]
                else 0.0, "n": float(n)}
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
    return {"tvd": tvd, "psi": float(np.add.reduce(spread)), "js": js,
            "chi2": float(np.add.reduce(chi)),
            "unseen_rate": float(q[-1]) if used[unseen] else 0.0, "n": float(n)}


@dataclass(frozen=True)
class Rule:
    """The decision rule's knobs (DriftConfig carries them)."""

    numeric_min_effect: float = 0.05  # W1 in reference sigmas
    categorical_min_effect: float = 0.03  # total variation distance
    correlation_min_effect: float = 0.1  # largest change of a pairwise correlation
    false_alarm_rate: float = 0.01  # per window, across all features (Bonferroni)


def z_for(rule: Rule, tests: int) -> float:
    return _z(rule.false_alarm_rate / (2 * max(1, tests)))


@functools.lru_cache(maxsize=256)
def _z(tail: float) -> float:
    """The normal quantile with `tail` above it; the same few per stream, every window."""
    return NormalDist().inv_cdf(1 - tail)


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
    means first so the one-pass correlation stays accurate (`block` is left as it was)."""
    block = block - centre
    if incomplete is not None and incomplete.any():
        block = block[~incomplete]
    return np.ones(len(block)) @ block, block.T @ block, len(block)  # BLAS: 7x a strided sum


def _corr_from(total: np.ndarray, cross: np.ndarray, n: int) -> np.ndarray:
    k = len(total)
    if n < 2:
        return np.zeros((k, k))
    mean = total / n
    cov = cross / n
    cov -= mean[:, None] * mean  # np.outer, as the ufunc it calls
    std = np.sqrt(np.maximum(np.diagonal(cov), 0.0))  # np.clip(.., 0.0, None), alike
    with np.errstate(divide="ignore", invalid="ignore"):
        corr: np.ndarray = cov / (std[:, None] * std)
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
    delta = np.absolute(corr - prepared.corr)
    k = len(names)
    delta.flat[::k + 1] = 0.0  # the diagonal, as np.fill_diagonal sets it
    i, j = divmod(int(delta.argmax()), k)
    n_eff = n_effective(n, prepared.profile.count)
    pairs = len(names) * (len(names) - 1) // 2
    noise = _z(rule.false_alarm_rate / (2 * pairs)) / math.sqrt(n_eff)
    threshold = max(rule.correlation_min_effect, noise)
    score = float(delta[i, j])
    return {"score": score, "threshold": threshold, "drifted": score > threshold,
            "pair": [names[i], names[j]], "reference": float(prepared.corr[i, j]),
            "current": float(corr[i, j]), "n": n}
