"""What the drift monitor says about a window beyond its verdict: the reference against
current distributions of the most drifting features (the replay report draws them), and the
drift.window summary."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from agent.window import Window
from plugins.drift.profile import CategoricalProfile
from plugins.drift.statistics import Prepared, PreparedNumeric

HISTOGRAMS = 3  # the most drifting features get their distributions in the results
COARSE = 5  # reference bins (1% each) per histogram bar: 20 bars
SHARES_ROWS = 4096  # windows up to this many rows look their bars' shares up ...
SHARES_KEPT = 8  # ... for this many window sizes at a time (at most ~3 MiB)
_SHARES: dict[int, dict[float, float]] = {}


def draw(worst: list[tuple[str, dict[str, Any]]], rows: dict[str, int], reference: Prepared,
         counts: np.ndarray, n: np.ndarray, *, columns: dict[str, np.ndarray]) -> None:
    """Each of the worst features' histogram into its verdict: numeric_histogram of each
    numeric one (`rows`: its row of `counts`), their bars summed in one array operation
    (sums of whole counts: exact in any order), or categorical_histogram."""
    numeric = [(found, rows[name], reference.numeric[name]) for name, found in worst
               if name in rows]
    shapes = {(len(ref.probs), _reference_bars(ref)[2]) for _, _, ref in numeric}
    if len(shapes) == 1:
        ((bins, width),) = shapes
        picked = counts.take([row for _, row, _ in numeric], axis=0)[:, :bins]
        summed = np.add.reduce(picked.reshape(len(numeric), -1, width), axis=2).tolist()
        for (found, row, ref), current in zip(numeric, summed, strict=True):
            edges, bars, _ = _reference_bars(ref)
            found["histogram"] = {"edges": list(edges), "reference": list(bars),
                                  "current": _rounded(current, max(int(n[row]), 1))}
    else:
        for found, row, ref in numeric:
            found["histogram"] = numeric_histogram(ref, counts[row], int(n[row]))
    for name, found in worst:
        if name not in rows:
            found["histogram"] = categorical_histogram(reference.categorical[name].profile,
                                                       columns[name])


def numeric_histogram(ref: PreparedNumeric, counts: np.ndarray, n: int) -> dict[str, Any]:
    """Reference against current shares on the reference's quantile bins, five to a bar
    (the reference's side worked out once per reference)."""
    edges, reference, width = _reference_bars(ref)
    # Summed as they come (integers from a scan, floats otherwise): exact either way, and
    # c / total is the same float for the int c as for the float.
    current = np.add.reduce(counts[:len(ref.probs)].reshape(-1, width), axis=1)
    return {"edges": list(edges), "reference": list(reference),
            "current": _rounded(current.tolist(), max(n, 1))}


def _rounded(summed: list[float], total: int) -> list[float]:
    """round(c / total, 5) of each bar's count, remembered per window size: small windows
    repeat the same few counts, and 60 round() calls were a tenth of such a window's work."""
    if total > SHARES_ROWS:
        return [round(c / total, 5) for c in summed]
    known = _SHARES.get(total)
    if known is None:
        if len(_SHARES) >= SHARES_KEPT:
            _SHARES.clear()
        known = _SHARES[total] = {}
    try:
        return [known[c] for c in summed]
    except KeyError:
        for c in summed:
            if c not in known:
                known[c] = round(c / total, 5)
        return [known[c] for c in summed]


def _reference_bars(ref: PreparedNumeric) -> tuple[list[float], list[float], int]:
    if ref.bars is None:
        profile = ref.profile
        bins = len(profile.probs)
        width = COARSE if bins % COARSE == 0 else 1
        reference = np.asarray(profile.probs).reshape(-1, width).sum(axis=1)
        ref.bars = ([float(e) for e in profile.edges[::width]],
                    [round(v, 5) for v in reference.tolist()], width)
    return ref.bars


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


def window_summary(window: Window, results: dict[str, Any]) -> dict[str, Any]:
    """drift.window's data: each feature's statistic against its threshold, bounded by the
    features a stream keeps (plain numbers only)."""
    features = {
        name: {"method": found.get("method"), "score": found.get(found.get("method", "")),
               "threshold": found.get("threshold"), "ratio": found.get("ratio"),
               "drifted": bool(found.get("drifted"))}
        for name, found in (results.get("features") or {}).items() if isinstance(found, dict)}
    multivariate = results.get("multivariate") or {}
    return {"start": window.start, "end": window.end, "n": window.n, "rows": window.rows,
            "drifted": bool(results.get("drifted")), "declared": bool(results.get("declared")),
            "multivariate": multivariate.get("score"), "features": features}
