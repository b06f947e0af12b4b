"""The multivariate check: the window's Pearson correlations of the reference's correlated
features against the reference's, over the rows complete and inside every feature's fence,
from a scan's sums (numeric.scan) or from the columns a block at a time; and the sample-size
terms the decision rule shares with it."""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.drift.profile import fence_of

if TYPE_CHECKING:
    from plugins.drift.numeric import Scan
    from plugins.drift.statistics import Prepared, PreparedNumeric, Rule

CORRELATION_BLOCK = 8192
_ONES = np.ones(CORRELATION_BLOCK)  # the row sums' vector (never written), not made anew
_ONES.flags.writeable = False


def n_effective(n: int, m: int) -> float:
    return n * m / (n + m) if n and m else 0.0


@functools.lru_cache(maxsize=256)
def _z(tail: float) -> float:
    """The normal quantile with `tail` above it; the same few per stream, every window."""
    return NormalDist().inv_cdf(1 - tail)


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
    ones = _ONES[:len(block)] if len(block) <= len(_ONES) else np.ones(len(block))
    return ones @ block, block.T @ block, len(block)  # BLAS: 7x a strided sum


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
    if len(names) < 2 or not columns.keys() >= prepared.corr_set:
        return None
    if scanned is not None and scanned[0] == prepared.corr_names:
        found = scanned[1]
        corr, n = _corr_from(found.total, found.cross, found.complete), found.complete
    else:
        corr, n = _correlation(columns, names,
                               [prepared.numeric[m].profile.mean for m in names],
                               fences([prepared.numeric[m] for m in names]))
    if n < 10:
        return None
    delta = corr - prepared.corr
    np.absolute(delta, out=delta)
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
