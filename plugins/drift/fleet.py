"""Window profiles that add up across hosts: counts on the shared reference's bins.

An agent publishes one per final window (`inferwatch/v1/<host>/profiles/<model>`); a fleet
consumer (contrib/fleet) adds the hosts' counts and computes drift and quality for the
fleet. Counting on the *reference's* quantile bins (not each host's own) is what makes the
merge exact: the merged profile is the profile of the concatenated data, so fleet figures
equal a single host's computation over everyone's rows.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

from plugins.drift.profile import OTHER, Profile, bin_index

SCHEMA = 1
MAX_CATEGORIES = 50  # per feature in a window profile; the rest counted under OTHER
MAX_CLASSES = 50
Count = Annotated[int, msgspec.Meta(ge=0)]  # a negative count would make PSI's log NaN


class FeatureCounts(msgspec.Struct, kw_only=True, omit_defaults=True):
    counts: list[Count] | None = None  # numeric: one count per reference bin
    categories: Annotated[dict[str, Count], msgspec.Meta(max_length=MAX_CATEGORIES + 1)] | None \
        = None  # categorical
    missing: Count = 0


class WindowProfile(msgspec.Struct, kw_only=True):
    """Schema 1. `hosts` lists who contributed (one host on the wire, many once merged)."""

    model: str
    model_version: str
    window: str
    end: float
    reference: str  # digest of the reference profile the counts are binned on
    hosts: list[str]
    n: Count = 0
    features: dict[str, FeatureCounts] = msgspec.field(default_factory=dict)
    classes: Annotated[list[str], msgspec.Meta(max_length=MAX_CLASSES)] = msgspec.field(
        default_factory=list)
    confusion: list[list[Count]] = msgspec.field(default_factory=list)  # true x predicted
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        """Shapes that merge() and quality() index by: checked when decoded, not when used."""
        if not math.isfinite(self.end):
            raise ValueError("end must be a finite number")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        if len(self.confusion) != len(self.classes) or any(
                len(row) != len(self.classes) for row in self.confusion):
            raise ValueError("confusion must be a square matrix over classes")

    @property
    def key(self) -> tuple[str, str, str, float, str]:
        return (self.model, self.model_version, self.window, self.end, self.reference)


def invalid(profile: WindowProfile, reference: Profile) -> str | None:
    """Why `profile` cannot be merged on `reference` (None when it can): another model, or
    counts not on the reference's bins, would make merge() or drift() fail for every window
    merged with it. Features the reference does not know are dropped (drift ignores them)."""
    if (profile.model, profile.model_version) != (reference.model, reference.model_version):
        return "model_mismatch"
    known = reference.numeric.keys() | reference.categorical.keys()
    profile.features = {k: v for k, v in profile.features.items() if k in known}
    for name, counts in profile.features.items():
        if name in reference.numeric:
            bins = len(reference.numeric[name].edges) - 1
            if counts.categories is not None or len(counts.counts or ()) != bins:
                return "bad_counts"
        elif counts.counts is not None or counts.categories is None:
            return "bad_counts"
    return None


def reference_digest(reference: Profile) -> str:
    """Which reference a profile's bins are; profiles on different references never merge."""
    edges = msgspec.json.encode({k: v.edges for k, v in sorted(reference.numeric.items())})
    return hashlib.sha256(edges).hexdigest()[:16]


def _numeric(column: np.ndarray, edges: list[float]) -> FeatureCounts:
    values = column.astype(np.float64)
    finite = values[np.isfinite(values)]
    counts = np.bincount(bin_index(np.asarray(edges), finite), minlength=len(edges) - 1)
    return FeatureCounts(counts=[int(c) for c in counts], missing=int(len(values) - len(finite)))


def _categorical(column: np.ndarray) -> FeatureCounts:
    found: dict[str, int] = {}
    missing = 0
    for value in column.tolist():
        if value is None:
            missing += 1
        else:
            found[str(value)] = found.get(str(value), 0) + 1
    return FeatureCounts(categories=_capped(found), missing=missing)


def _capped(counts: Mapping[str, int]) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(ranked[:MAX_CATEGORIES])
    if rest := sum(c for _, c in ranked[MAX_CATEGORIES:]):
        out[OTHER] = out.get(OTHER, 0) + rest
    return out


def build(columns: Mapping[str, np.ndarray], reference: Profile, *, host: str, window: str,
          end: float, labels: Sequence[Any] = (), predictions: Sequence[Any] = ()
          ) -> WindowProfile:
    """The window's counts; `labels`/`predictions` are the labelled rows, for the confusion."""
    profile = WindowProfile(model=reference.model, model_version=reference.model_version,
                            window=window, end=end, reference=reference_digest(reference),
                            hosts=[host], n=max((len(c) for c in columns.values()), default=0))
    for name, column in columns.items():
        if name in reference.numeric:
            profile.features[name] = _numeric(column, reference.numeric[name].edges)
        elif name in reference.categorical or column.dtype == object:
            profile.features[name] = _categorical(column)
    if len(labels):
        profile.classes, profile.confusion = _confusion(labels, predictions)
    return profile


def _confusion(labels: Sequence[Any], predictions: Sequence[Any]
               ) -> tuple[list[str], list[list[int]]]:
    classes = sorted({str(v) for v in (*labels, *predictions)})[:MAX_CLASSES]
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for truth, guess in zip(labels, predictions, strict=True):
        t, p = index.get(str(truth)), index.get(str(guess))
        if t is not None and p is not None:
            matrix[t][p] += 1
    return classes, matrix


def merge(profiles: Iterable[WindowProfile]) -> WindowProfile:
    """The sum of profiles of one key (model, version, window, end, reference), each host once."""
    items = list(profiles)
    first = items[0]
    out = WindowProfile(model=first.model, model_version=first.model_version,
                        window=first.window, end=first.end, reference=first.reference, hosts=[])
    seen: set[str] = set()
    for item in items:
        if item.key != first.key:
            raise ValueError("profiles of different windows or references do not merge")
        if seen & set(item.hosts):
            continue  # a profile delivered twice (at-least-once) counts once
        seen |= set(item.hosts)
        out.hosts += item.hosts
        out.n += item.n
        _add_features(out.features, item.features)
        out.classes, out.confusion = _add_confusion(out.classes, out.confusion,
                                                    item.classes, item.confusion)
    out.hosts.sort()
    return out


def _add_features(into: dict[str, FeatureCounts], more: Mapping[str, FeatureCounts]) -> None:
    for name, counts in more.items():
        mine = into.setdefault(name, FeatureCounts())
        mine.missing += counts.missing
        if counts.counts is not None:
            mine.counts = [a + b for a, b in zip(mine.counts or [0] * len(counts.counts),
                                                 counts.counts, strict=True)]
        if counts.categories is not None:
            total = dict(mine.categories or {})
            for category, n in counts.categories.items():
                total[category] = total.get(category, 0) + n
            mine.categories = _capped(total)


def _add_confusion(classes: list[str], matrix: list[list[int]], more: list[str],
                   other: list[list[int]]) -> tuple[list[str], list[list[int]]]:
    union = sorted(set(classes) | set(more))[:MAX_CLASSES]
    index = {c: i for i, c in enumerate(union)}
    out = [[0] * len(union) for _ in union]
    for names, counts in ((classes, matrix), (more, other)):
        for i, truth in enumerate(names):
            for j, guess in enumerate(names):
                if truth in index and guess in index:
                    out[index[truth]][index[guess]] += counts[i][j]
    return union, out


def quality(profile: WindowProfile, positive: str = "1") -> dict[str, float]:
    """Accuracy, and precision/recall/F1 of the positive class, from the merged confusion."""
    matrix = np.array(profile.confusion, dtype=np.float64)
    total = matrix.sum()
    if not total:
        return {}
    out = {"accuracy": float(np.trace(matrix) / total), "labeled_samples": float(total)}
    if positive in profile.classes:
        k = profile.classes.index(positive)
        tp, predicted, actual = matrix[k, k], matrix[:, k].sum(), matrix[k, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out |= {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    return out


def drift(profile: WindowProfile, reference: Profile) -> dict[str, dict[str, float]]:
    """PSI and total variation distance of each feature's window shares against the reference."""
    out: dict[str, dict[str, float]] = {}
    for name, counts in profile.features.items():
        if counts.counts is not None and name in reference.numeric:
            current = np.array(counts.counts, dtype=np.float64)
            expected = np.array(reference.numeric[name].probs, dtype=np.float64)
        elif counts.categories is not None and name in reference.categorical:
            freqs = reference.categorical[name].freqs
            keys = sorted(set(freqs) | set(counts.categories))
            current = np.array([counts.categories.get(k, 0) for k in keys], dtype=np.float64)
            expected = np.array([freqs.get(k, 0.0) for k in keys])
        else:
            continue
        if current.sum() > 0:
            out[name] = _divergence(current / current.sum(), expected / max(expected.sum(), 1e-12))
    return out


def _divergence(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    eps = 1e-4  # a floor on empty bins, as PSI is usually computed
    pp, qq = np.maximum(p, eps), np.maximum(q, eps)
    psi = float(np.sum((pp - qq) * np.log(pp / qq)))
    return {"psi": psi if math.isfinite(psi) else 0.0, "tvd": float(0.5 * np.abs(p - q).sum())}


def encode(profile: WindowProfile) -> bytes:
    return msgspec.json.encode(profile)


def decode(payload: bytes) -> WindowProfile:
    """Raise ValueError for anything that is not a schema-1 window profile."""
    try:
        profile = msgspec.json.decode(payload, type=WindowProfile)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a window profile: {exc}") from None
    if profile.schema != SCHEMA:
        raise ValueError(f"window profile schema {profile.schema}, expected {SCHEMA}")
    return profile
