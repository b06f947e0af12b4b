"""One window's numeric statistics, every feature at once: the bins and the correlation
sums in one scan of a rows x k matrix, then Wasserstein, KS, PSI and Jensen-Shannon in one
set of array operations for all k features. A small window's cost is the count of numpy
calls, not its rows, so each step is one call for every feature; the results are the same
floats as feature by feature (tests/plugins/test_drift_fast.py compares them bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from plugins.drift.correlation import _centred_sums, outside
from plugins.drift.profile import BINS

if TYPE_CHECKING:
    from plugins.drift.statistics import Batch

PSI_EPS = 1e-4
LOOKUP_CELLS = 4096
SCAN_BLOCK = 4096  # rows per block of a scan: ~3 MiB at 20 features
COARSE = 10  # PSI on deciles, the customary form
# Terms looked up by count: tables of at most this many (share, count) cells (2 or 5 floats
# each), for this many window sizes per reference; larger windows compute them (at most
# ~0.7 MiB per numeric batch, ~1.3 MiB per categorical feature).
TABLE_CELLS, TABLES_KEPT = 1 << 12, 8


@dataclass
class Scan:
    """What one pass over a window's numeric columns found."""

    counts: np.ndarray  # k x BINS, integers (as int64: c / n is the same float either way)
    n: np.ndarray  # k: values counted (NaN left out)
    total: np.ndarray  # sums of complete rows (batch.summed), centred on the reference means
    cross: np.ndarray  # their cross products
    complete: int  # rows with every summed feature present
    finite: bool = False  # True: surely no NaN, no infinity (none missing, none past a fence)
    full: int | None = None  # the rows, when every feature counted all of them (no NaN)


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
    gaps = False
    finite = math.isfinite(batch.fence_cells[0]) and math.isfinite(batch.fence_cells[1])
    with np.errstate(all="ignore"):  # values near the float limit: clipped below
        for start in range(0, rows, SCAN_BLOCK):
            block = matrix[start:start + SCAN_BLOCK]
            # The binning runs on the k x rows transpose: C order as stacked() made it,
            # so that no pass mixes layouts (each value's bin is the same either way).
            index, wild, missing = _bins(batch, block.T)
            finite = finite and missing is None and not wild
            if missing is not None:
                gaps = True
                missing_per += np.add.reduce(missing, axis=1)
            counts += np.bincount(index.ravel(order="K"), minlength=k * (BINS + 1))
            sums, products, rows_complete = _block_sums(
                batch, block, None if missing is None else missing.T, wild)
            total += sums
            cross += products
            complete += rows_complete
    return Scan(counts.reshape(k, BINS + 1)[:, :BINS], rows - missing_per, total, cross,
                complete, finite, None if gaps else rows)


def _bins(batch: Batch, values: np.ndarray
          ) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """Each value's bin (`values`: k x rows), numbered after the previous feature's (NaN:
    the slot after them), by the stacked lookup tables; `wild`: some value may lie beyond
    its fence; where values are NaN (None: nowhere). Two whole-block reductions on the
    common scale of the lookup say "surely not" to both in the common case: a NaN value
    has a NaN position, which they carry, so only then are the NaN looked for. A batch
    whose last block had NaN looks for them first, as before (`Batch.gappy`, a hint)."""
    position = values - batch.low[:, None]
    position *= batch.scale[:, None]
    low, high = batch.fence_cells
    missing = None
    if batch.gappy:
        missing = np.isnan(values)
        if missing.any():
            position[missing] = 0
        else:
            missing = None
    lowest = np.minimum.reduce(position, axis=None)
    highest = np.maximum.reduce(position, axis=None)
    fits = lowest >= low and highest <= high
    if not fits and missing is None and not batch.gappy and (
            math.isnan(lowest) or math.isnan(highest)):
        missing = np.isnan(values)
        if missing.any():
            position[missing] = 0
            fits = (np.minimum.reduce(position, axis=None) >= low
                    and np.maximum.reduce(position, axis=None) <= high)
        else:
            missing = None
    batch.gappy = missing is not None
    wild = not fits
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
    return index, wild, missing


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


def numeric_lists(batch: Batch, counts: np.ndarray, n: np.ndarray, full: int | None = None
                  ) -> tuple[list[float], list[float], list[float], list[float], list[int]]:
    """Wasserstein, KS, PSI and Jensen-Shannon of k features as lists, and each one's n:
    numeric_stats_many without the dicts, in as few array operations as the arithmetic
    allows (each one on all k features; a small window's cost is their count). `full`:
    the n of every feature, when the caller knows they are all the same (no NaN)."""
    k = len(batch.refs)
    with np.errstate(all="ignore"):  # n = 0: NaN, and 0 log 0, left out below
        q = counts / (n[:, None] if full is None else full)  # c / n: the same float
        diff = np.add.accumulate(q, axis=1)  # np.cumsum, without its Python wrapper
        np.subtract(diff, batch.cdf, out=diff)
        np.absolute(diff, out=diff)
        found = np.empty((4, k))  # W1, KS, PSI, JS: one tolist for all four
        np.divide(np.einsum("ij,ij->i", diff[:, :-1], batch.gaps), batch.std, out=found[0])
        np.maximum.reduce(diff, axis=1, out=found[1])
        b = np.maximum(np.add.reduce(q.reshape(k, COARSE, BINS // COARSE), axis=2), PSI_EPS)
        spread = b - batch.coarse_floor
        np.divide(b, batch.coarse_floor, out=b)
        np.log(b, out=b)
        spread *= b
        np.add.reduce(spread, axis=1, out=found[2])
        rows = full if full is not None else int(n[0]) if len(n) else 0
        if (rows > 0 and len(batch.levels) * (rows + 1) <= TABLE_CELLS
                and (full is not None or bool((n == rows).all()))):
            table, base = batch.js_table(rows)
            terms = table.take(base + counts.astype(np.intp, copy=False), axis=1)
            sides = np.add.reduce(terms, axis=2)
            half = np.add(sides[0], sides[1], out=sides[0])
            half /= 2
            np.sqrt(np.maximum(0.0, half, out=half), out=found[3])  # 0.0 first, as before
        else:  # [0]: the reference's shares, [1]: this window's
            found[3] = _js_sides(np.array((batch.probs, q)), (batch.probs + q) / 2, 2)
    w1, ks, psi, js = found.tolist()
    return w1, ks, psi, js, n.astype(np.int64, copy=False).tolist()


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
