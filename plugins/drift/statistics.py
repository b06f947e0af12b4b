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
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from plugins.drift.profile import BINS, OTHER, CategoricalProfile, NumericProfile, Profile

PSI_EPS = 1e-4
LOOKUP_CELLS = 4096
CORRELATION_BLOCK = 4096
BLOCK = 16384
COARSE = 10  # PSI on deciles, the customary form
# Null distribution of sqrt(n_eff) * W1/sigma on 100 quantile bins (measured by simulation,
# n from 100 to 100,000): mean 1.39, standard deviation ~0.68.
W_NULL_MEAN, W_NULL_SD = 1.39, 0.68
# Extra statistics from other plugins: name -> fn(window values, reference) -> score.
EXTRA_NUMERIC: dict[str, Callable[[np.ndarray, NumericProfile], float | None]] = {}


def register_statistic(name: str,
                       fn: Callable[[np.ndarray, NumericProfile], float | None]) -> None:
    """Add a numeric drift statistic (reported beside the built-in ones, not decisive)."""
    EXTRA_NUMERIC[name] = fn


@dataclass
class PreparedNumeric:
    profile: NumericProfile
    edges: np.ndarray = field(init=False)
    inner: np.ndarray = field(init=False)
    probs: np.ndarray = field(init=False)
    cdf: np.ndarray = field(init=False)
    gaps: np.ndarray = field(init=False)
    coarse: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.edges = np.array(self.profile.edges)
        self.inner = self.edges[1:-1]
        self.probs = np.array(self.profile.probs)
        self.cdf = np.cumsum(self.probs)
        mids = (self.edges[:-1] + self.edges[1:]) / 2
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

    def bins(self, values: np.ndarray) -> np.ndarray:
        """searchsorted(inner, values, side="right"), exactly, in a few array passes."""
        if self.table is None:
            found: np.ndarray = np.searchsorted(self.inner, values, side="right")
            return found
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


def n_effective(n: int, m: int) -> float:
    return n * m / (n + m) if n and m else 0.0


def numeric_stats(ref: PreparedNumeric, values: np.ndarray) -> dict[str, float] | None:
    counts, n = np.zeros(BINS), 0
    for start in range(0, len(values), BLOCK):  # blocks: a check's memory stays small
        block = values[start:start + BLOCK]
        block = block[~np.isnan(block)]
        counts += np.bincount(ref.bins(block), minlength=BINS)
        n += len(block)
    if n == 0:
        return None
    q = counts / n
    cdf = np.cumsum(q)
    diff = np.abs(cdf - ref.cdf)
    coarse = q.reshape(COARSE, BINS // COARSE).sum(axis=1)
    a, b = np.maximum(ref.coarse, PSI_EPS), np.maximum(coarse, PSI_EPS)
    out = {
        "wasserstein": float(np.dot(diff[:-1], ref.gaps) / ref.profile.std),
        "ks": float(diff.max()),
        "psi": float(np.sum((b - a) * np.log(b / a))),
        "js": js_distance(ref.probs, q),
        "n": float(n),
    }
    for name, fn in EXTRA_NUMERIC.items():
        found = fn(values, ref.profile)
        if found is not None:
            out[name] = float(found)
    return out


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 to 1), as scipy.spatial.distance.jensenshannon."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        right = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (left + right) / 2)))


def categorical_stats(ref: PreparedCategorical, values: np.ndarray) -> dict[str, float] | None:
    found: Counter[Any] = Counter()
    for start in range(0, len(values), BLOCK):  # counted in C, a block at a time
        found.update(values[start:start + BLOCK].tolist())
    found.pop(None, None)
    n = sum(found.values())
    if n == 0:
        return None
    k = len(ref.names)
    other, unseen = k - 1, k  # the last slot: categories the reference never had
    counts = np.zeros(k + 1)
    for value, count in found.items():
        counts[ref.index.get(str(value), unseen)] += count
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


@dataclass(frozen=True)
class Rule:
    """The decision rule's knobs (DriftConfig carries them)."""

    numeric_min_effect: float = 0.05  # W1 in reference sigmas
    categorical_min_effect: float = 0.03  # total variation distance
    correlation_min_effect: float = 0.1  # largest change of a pairwise correlation
    false_alarm_rate: float = 0.01  # per window, across all features (Bonferroni)


def z_for(rule: Rule, tests: int) -> float:
    return NormalDist().inv_cdf(1 - rule.false_alarm_rate / (2 * max(1, tests)))


def numeric_threshold(rule: Rule, n: int, m: int, z: float) -> float:
    n_eff = n_effective(n, m)
    noise = (W_NULL_MEAN + z * W_NULL_SD) / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.numeric_min_effect, noise)


def categorical_threshold(rule: Rule, ref: PreparedCategorical, n: int, z: float) -> float:
    n_eff = n_effective(n, ref.profile.count)
    # TVD under no drift: mean ~0.4 * spread / sqrt(n), sd ~ spread / (3 sqrt(n)).
    noise = (0.4 + z / 3) * ref.spread / math.sqrt(n_eff) if n_eff else math.inf
    return max(rule.categorical_min_effect, noise)


def _correlation(columns: dict[str, np.ndarray], names: list[str], centre: list[float]
                 ) -> tuple[np.ndarray, int]:
    """Pearson correlation over complete rows, accumulated a block at a time: a 100,000-row
    window never needs its whole feature matrix at once. Centred on the reference means
    first, so the one-pass sums stay accurate."""
    k = len(names)
    total, cross, n = np.zeros(k), np.zeros((k, k)), 0
    rows = len(columns[names[0]])
    for start in range(0, rows, CORRELATION_BLOCK):
        block = np.column_stack([columns[name][start:start + CORRELATION_BLOCK]
                                 for name in names]).astype(np.float64)
        block -= centre
        block = block[~np.isnan(block).any(axis=1)]
        total += block.sum(axis=0)
        cross += block.T @ block
        n += len(block)
    if n < 2:
        return np.zeros((k, k)), n
    mean = total / n
    cov = cross / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(std, std)
    return np.nan_to_num(corr), n  # a constant column correlates with nothing: 0


def correlation_check(prepared: Prepared, columns: dict[str, np.ndarray], rule: Rule,
                      z: float) -> dict[str, Any] | None:
    names = prepared.profile.corr_features
    if len(names) < 2 or any(n not in columns for n in names):
        return None
    corr, n = _correlation(columns, names, [prepared.numeric[m].profile.mean for m in names])
    if n < 10:
        return None
    delta = np.abs(corr - prepared.corr)
    np.fill_diagonal(delta, 0.0)
    i, j = np.unravel_index(int(delta.argmax()), delta.shape)
    n_eff = n_effective(n, prepared.profile.count)
    pairs = len(names) * (len(names) - 1) // 2
    noise = NormalDist().inv_cdf(1 - rule.false_alarm_rate / (2 * pairs)) / math.sqrt(n_eff)
    threshold = max(rule.correlation_min_effect, noise)
    score = float(delta[i, j])
    return {"score": score, "threshold": threshold, "drifted": score > threshold,
            "pair": [names[i], names[j]], "reference": float(prepared.corr[i, j]),
            "current": float(corr[i, j]), "n": n}
