"""Reference profiles: what "the data the model was trained on" looked like, compactly.

Numeric features keep 100 equal-probability bins (101 quantile edges and the share in each),
the mean and the spread; categorical ones the share of their 50 most frequent categories;
the numeric features together keep their correlation matrix (for the multivariate test).
A profile is a small JSON document (~40 KiB for 25 features), versioned with the model
version, and profiles merge (counts and moments exactly, quantile bins approximately), so a
fleet can combine hosts' profiles.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import numpy as np

BINS = 100
MAX_CATEGORIES = 50
OTHER = "__other__"
FORMAT = 1
T = TypeVar("T")


class NumericProfile(msgspec.Struct, kw_only=True):
    count: int
    mean: float
    std: float
    edges: list[float]  # BINS + 1 quantile edges
    probs: list[float]  # share of the reference in each bin (equal unless values tie)


class CategoricalProfile(msgspec.Struct, kw_only=True):
    count: int
    freqs: dict[str, float]  # the most frequent categories; the rest under OTHER


class Profile(msgspec.Struct, kw_only=True):
    model: str
    model_version: str = ""
    created: float = 0.0
    count: int = 0
    numeric: dict[str, NumericProfile] = msgspec.field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = msgspec.field(default_factory=dict)
    corr_features: list[str] = msgspec.field(default_factory=list)
    corr: list[list[float]] = msgspec.field(default_factory=list)
    format: int = FORMAT

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(self))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Profile:
        """Raise ValueError with a readable reason."""
        try:
            return msgspec.json.decode(path.read_bytes(), type=cls)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
        except msgspec.DecodeError as exc:
            raise ValueError(f"{path}: not a reference profile: {exc}") from None


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin 0..BINS-1 of each value; values beyond the reference's range go to the end bins."""
    index: np.ndarray = np.searchsorted(edges[1:-1], values, side="right")
    return index


def numeric_profile(values: np.ndarray) -> NumericProfile | None:
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    if n < 2:
        return None
    # Linear-interpolated quantiles (numpy's default) read off the sorted values, and bin
    # counts by binary search of the edges in them: no pass over the data per bin.
    position = np.linspace(0.0, 1.0, BINS + 1) * (n - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    edges = values[low] + (values[high] - values[low]) * (position - low)
    below = np.searchsorted(values, edges[1:-1], side="left")
    counts = np.diff(np.r_[0, below, n])
    return NumericProfile(count=n, mean=float(values.mean()),
                          std=float(values.std()) or 1.0, edges=edges.tolist(),
                          probs=(counts / n).tolist())


def categorical_profile(values: np.ndarray) -> CategoricalProfile | None:
    counts = Counter(values.tolist())  # counted in C
    counts.pop(None, None)
    total = sum(counts.values())
    if not total:
        return None
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    freqs = {str(name): count / total for name, count in ranked[:MAX_CATEGORIES]}
    rest = sum(count for _, count in ranked[MAX_CATEGORIES:]) / total
    if rest:
        freqs[OTHER] = rest
    return CategoricalProfile(count=total, freqs=freqs)


def build(columns: dict[str, np.ndarray], *, model: str, model_version: str = "") -> Profile:
    """Columns as the windows carry them: float64 (NaN missing) or object (None missing)."""
    profile = Profile(model=model, model_version=model_version, created=time.time())
    for name, column in columns.items():
        if column.dtype == object:
            found_c = categorical_profile(column)
            if found_c is not None:
                profile.categorical[name] = found_c
        else:
            found_n = numeric_profile(column.astype(np.float64))
            if found_n is not None:
                profile.numeric[name] = found_n
    profile.count = max((len(c) for c in columns.values()), default=0)
    names = [n for n in profile.numeric if not n.startswith("__")]
    if len(names) >= 2:
        matrix = np.column_stack([columns[n].astype(np.float64) for n in names])
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        if len(matrix) > 2:
            profile.corr_features = names
            corr = np.nan_to_num(np.corrcoef(matrix, rowvar=False))
            profile.corr = [[float(v) for v in row] for row in corr.reshape(len(names), -1)]
    return profile


def merge(a: Profile, b: Profile) -> Profile:
    """Counts, means, spreads and category shares exactly; quantile bins approximately
    (each side's bins re-binned on the larger side's edges); correlation weighted by count."""
    if (a.model, a.model_version) != (b.model, b.model_version):
        raise ValueError("profiles of different models or versions do not merge")
    out = Profile(model=a.model, model_version=a.model_version, created=time.time(),
                  count=a.count + b.count)
    out.numeric = _merge_each(a.numeric, b.numeric, _merge_numeric)
    out.categorical = _merge_each(a.categorical, b.categorical, _merge_categorical)
    if a.corr_features == b.corr_features and a.corr:
        weight = a.count / max(1, a.count + b.count)
        out.corr_features = a.corr_features
        mixed = np.array(a.corr) * weight + np.array(b.corr) * (1 - weight)
        out.corr = [[float(v) for v in row] for row in mixed]
    return out


def _merge_each(left: dict[str, T], right: dict[str, T], both: Callable[[T, T], T]
                ) -> dict[str, T]:
    """A feature one side lacks comes from the other as it is."""
    out = {**left, **right}
    for name in left.keys() & right.keys():
        out[name] = both(left[name], right[name])
    return out


def _merge_categorical(p: CategoricalProfile, q: CategoricalProfile) -> CategoricalProfile:
    total = p.count + q.count
    shares = {k: (p.freqs.get(k, 0.0) * p.count + q.freqs.get(k, 0.0) * q.count) / total
              for k in sorted(p.freqs.keys() | q.freqs.keys())}
    return CategoricalProfile(count=total, freqs=shares)


def _merge_numeric(x: NumericProfile, y: NumericProfile) -> NumericProfile:
    n = x.count + y.count
    mean = (x.mean * x.count + y.mean * y.count) / n
    var = ((x.std ** 2 + (x.mean - mean) ** 2) * x.count
           + (y.std ** 2 + (y.mean - mean) ** 2) * y.count) / n
    big = x if x.count >= y.count else y
    edges = np.array(big.edges)
    mass = np.zeros(BINS)
    for side in (x, y):  # each side's bin mass, at its bin midpoints, re-binned
        mids = (np.array(side.edges[:-1]) + np.array(side.edges[1:])) / 2
        mass += np.bincount(bin_index(edges, mids), weights=np.array(side.probs) * side.count,
                            minlength=BINS)
    return NumericProfile(count=n, mean=mean, std=float(np.sqrt(var)) or 1.0,
                          edges=edges.tolist(), probs=(mass / n).tolist())
