"""Reference profiles: what "the data the model was trained on" looked like, compactly.

Numeric features keep 100 equal-probability bins (101 quantile edges and the share in each),
the mean and the spread; categorical ones the share of their 50 most frequent categories;
the numeric features together keep their correlation matrix (for the multivariate test).
A profile is a small JSON document (~40 KiB for 25 features), versioned with the model
version, and profiles merge (counts and moments exactly, quantile bins approximately), so a
fleet can combine hosts' profiles.

A few extreme values must not decide a reference: one 1.5e308 would make sigma infinite (every
later shift then scores 0) and the saved file unreadable. So the mean and spread are taken
over the values inside a fence far outside the bulk (the 5-95 % range widened tenfold on each
side), the end bin edges stop at that fence (the extreme values still count in the end bins),
and the correlation uses rows inside every fence. Values beyond the fence and +-inf are
counted per feature (`extreme`, `non_finite`): data-quality findings, not silently lost. A
profile with a non-finite statistic is never written.
"""

from __future__ import annotations

import math
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
FENCE = 10.0  # extreme: beyond the 5-95 % range by more than this many times its width
T = TypeVar("T")


class NumericProfile(msgspec.Struct, kw_only=True):
    count: int
    mean: float
    std: float
    edges: list[float]  # BINS + 1 quantile edges; the end ones stop at the fence
    probs: list[float]  # share of the reference in each bin (equal unless values tie)
    extreme: int = 0  # values beyond the fence: in the end bins, not in mean and std
    non_finite: int = 0  # +-inf values: left out, as missing (NaN) ones are
    fence: list[float] = msgspec.field(default_factory=list)  # [low, high]; [] in old files


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
        """Refuses (ValueError) a profile with a non-finite statistic: JSON would carry it
        as null, and the file would not load again."""
        if bad := non_finite_statistics(self):
            raise ValueError(f"{path}: not written: non-finite statistics in {', '.join(bad)}")
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(msgspec.json.encode(self))
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)  # e.g. `path` is a folder: no stray file beside it
            raise

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
    finite = np.isfinite(values)
    non_finite = int(np.count_nonzero(~finite & ~np.isnan(values)))
    values = np.sort(values[finite])
    n = len(values)
    if n < 2:
        return None
    edges = quantiles(values, np.linspace(0.0, 1.0, BINS + 1))
    low, high = fence(values)
    np.clip(edges, low, high, out=edges)  # only the end edges move, unless many are extreme
    inside = values[np.searchsorted(values, low, side="left"):
                    np.searchsorted(values, high, side="right")]
    # Bin counts by binary search of the edges in the sorted values: no pass per bin.
    below = np.searchsorted(values, edges[1:-1], side="left")
    counts = np.diff(np.r_[0, below, n])
    mean, std = moments(inside)
    found = NumericProfile(count=n, mean=mean, std=std or 1.0, edges=edges.tolist(),
                           probs=(counts / n).tolist(), extreme=n - len(inside),
                           non_finite=non_finite, fence=[low, high])
    return found if _finite_numeric(found) else None


def quantiles(ordered: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantiles of sorted values, as numpy's default (its monotone
    lerp); neighbours of opposite sign near the float limit, whose difference overflows,
    are mixed by weights instead."""
    position = at * (len(ordered) - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, len(ordered) - 1)
    t = position - low
    a, b = ordered[low], ordered[high]
    with np.errstate(over="ignore", invalid="ignore"):
        diff = b - a
        found: np.ndarray = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    wide = ~np.isfinite(diff)
    if wide.any():
        found[wide] = a[wide] * (1 - t[wide]) + b[wide] * t[wide]
    return np.maximum.accumulate(found)


def fence(ordered: np.ndarray) -> tuple[float, float]:
    """The range outside which a value is extreme: the 5-95 % range widened FENCE times its
    width on each side (on normal data ~35 sigma out; a few values cannot move it). Where
    that range is empty (mostly ties), the 1-99 % and then the 0.1-99.9 % range serve."""
    return _widen(quantiles(ordered, np.array([0.05, 0.95, 0.01, 0.99, 0.001, 0.999])))


def fence_of(p: NumericProfile) -> tuple[float, float]:
    """A profile's fence; for a profile saved before it was kept, read off its edges."""
    if len(p.fence) == 2:
        return p.fence[0], p.fence[1]
    e = p.edges
    return _widen(np.array([e[5], e[95], e[1], e[99], e[0], e[-1]]))


def _widen(q: np.ndarray) -> tuple[float, float]:
    """(low, high) from quantile pairs, the first pair with a width; never beyond the
    largest float, so the profile stays finite."""
    top = float(np.finfo(np.float64).max)
    for i in (0, 2, 4):
        with np.errstate(over="ignore", invalid="ignore"):
            width = q[i + 1] - q[i]
            if width > 0:
                low, high = q[i] - FENCE * width, q[i + 1] + FENCE * width
                return float(np.clip(low, -top, top)), float(np.clip(high, -top, top))
    return float(q[0]), float(q[1])


def moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation, scaled by a power of two first (exact), so values near
    the float limit cannot overflow the sums."""
    if not len(values):
        return 0.0, 0.0
    top = float(max(abs(values[0]), abs(values[-1])))  # sorted: the extremes are the ends
    scale = math.ldexp(1.0, math.frexp(top)[1] - 1) if top > 0 and math.isfinite(top) else 1.0
    scaled = values / scale
    return float(scaled.mean()) * scale, float(scaled.std()) * scale


def _finite_numeric(p: NumericProfile) -> bool:
    return bool(math.isfinite(p.mean) and math.isfinite(p.std)
                and np.isfinite(p.edges).all() and np.isfinite(p.probs).all()
                and np.isfinite(p.fence).all())


def non_finite_statistics(profile: Profile) -> list[str]:
    """The features (or `corr`) whose statistics are not all finite numbers."""
    bad = [name for name, p in profile.numeric.items() if not _finite_numeric(p)]
    bad += [name for name, c in profile.categorical.items()
            if not all(math.isfinite(v) for v in c.freqs.values())]
    if profile.corr and not np.isfinite(np.array(profile.corr, dtype=np.float64)).all():
        bad.append("corr")
    return bad


def findings(profile: Profile) -> dict[str, dict[str, int]]:
    """Per numeric feature, the values the profile set aside: {"extreme": n, "non_finite": m}."""
    return {name: {k: v for k, v in (("extreme", p.extreme), ("non_finite", p.non_finite)) if v}
            for name, p in profile.numeric.items() if p.extreme or p.non_finite}


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
        low = np.array([fence_of(profile.numeric[n])[0] for n in names])
        high = np.array([fence_of(profile.numeric[n])[1] for n in names])
        with np.errstate(invalid="ignore"):  # NaN compares False: the row is left out
            inside = ((matrix >= low) & (matrix <= high)).all(axis=1)
        matrix = matrix[inside]  # complete rows, none with an extreme value
        if len(matrix) > 2:
            profile.corr_features = names
            # Standardised first (correlation is scale-free): huge values cannot overflow.
            centre = np.array([profile.numeric[n].mean for n in names])
            spread = np.array([profile.numeric[n].std for n in names])
            with np.errstate(all="ignore"):  # a constant column correlates with nothing: 0
                corr = np.nan_to_num(np.corrcoef((matrix - centre) / spread, rowvar=False),
                                     posinf=0.0, neginf=0.0)
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
        mids = np.array(side.edges[:-1]) / 2 + np.array(side.edges[1:]) / 2
        mass += np.bincount(bin_index(edges, mids), weights=np.array(side.probs) * side.count,
                            minlength=BINS)
    return NumericProfile(count=n, mean=mean, std=float(np.sqrt(var)) or 1.0,
                          edges=edges.tolist(), probs=(mass / n).tolist(),
                          extreme=x.extreme + y.extreme, non_finite=x.non_finite + y.non_finite,
                          fence=[min(fence_of(x)[0], fence_of(y)[0]),
                                 max(fence_of(x)[1], fence_of(y)[1])])
