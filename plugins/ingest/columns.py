"""Samples into columns: numpy arrays per feature, predictions as class indices, scores.

Runs once per pane (a window's step), off the event loop in the agent. Feature problems are
counted here as data quality, against the model's declared schema where there is one.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from agent.model import Sample
from agent.window import Coded
from plugins.ingest.bounds import MAX_NAME, OTHER, Names
from plugins.ingest.decode import feature_values
from plugins.ingest.models import FeatureSpec, ModelConfig

ISSUES = ("missing", "null", "wrong_type", "non_finite", "out_of_range", "unseen_category")
OTHER_FEATURE = OTHER
SCORE_FEATURE = "__score"  # data-quality findings on the model's scores (the drift column's name)
MAX_CATEGORY = 256  # characters kept of a category value: enough to tell them apart


def class_name(value: object) -> str:
    """JSON `1`, `1.0`, `true` and `"1"` name the same class."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def class_order(names: Sequence[str]) -> list[str]:
    """Numeric names in numeric order, then the rest alphabetically."""
    def key(name: str) -> tuple[int, float, str]:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)
    return sorted(names, key=key)


@dataclass
class StreamNames:
    """A stream's bounds on classes, feature names and groups (docs/ingestion.md, "Limits").

    `features` and `groups` grow in the pane builder's thread only; first come, first kept.
    """

    classes: int  # most classes; the rest fold into `_other`
    max_features: int
    groups: Names
    features: dict[str, None] = field(default_factory=dict)  # undeclared names kept


@dataclass
class Columns:
    """One pane's samples as arrays. Class indices refer to `classes` (the stream's list)."""

    request_ids: list[str]
    ts: np.ndarray
    y_pred: np.ndarray
    y_true: np.ndarray
    scores: dict[str, np.ndarray]  # class name -> scores (NaN where absent)
    features: dict[str, np.ndarray]
    group: np.ndarray | None
    quality: dict[str, Counter[str]] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    coded: dict[str, Coded] = field(default_factory=dict)  # the categorical features as codes
    folded: Counter[str] = field(default_factory=Counter)  # values folded into `_other`, by kind


def build(samples: Sequence[Sample], ts: Sequence[float], *, task: str, classes: list[str],
          config: ModelConfig, names: StreamNames) -> Columns:
    """`classes` is the stream's growing class list; new classes are appended to it."""
    n = len(samples)
    ids = [s.request_id for s in samples]
    folded: Counter[str] = Counter()
    if task == "classification":
        codes = {name: i for i, name in enumerate(classes)}
        y_pred = np.fromiter((code(codes, classes, s.prediction, names.classes, folded)
                              for s in samples), np.int64, n)
        y_true = np.full(n, -1, np.int64)
        scores = _scores(samples, classes, codes, config.positive_class, limit=names.classes,
                         folded=folded)
        outside = _probabilities_only(scores)
    else:
        y_pred = np.array([to_number(s.prediction) for s in samples], np.float64)
        y_true = np.full(n, np.nan)
        scores, outside = {}, 0
    group = _groups(samples, names.groups, folded)
    features, quality = _features(samples, config.features, names, folded)
    if outside:
        quality[SCORE_FEATURE] = Counter(out_of_range=outside)
    # Codes are made here, in the pane's worker thread, once: every check of every window
    # holding this pane then counts categories with bincount.
    coded = {name: Coded.of(values) for name, values in features.items() if values.dtype == object}
    return Columns(ids, np.asarray(ts, np.float64), y_pred, y_true, scores, features, group,
                   quality, {rid: i for i, rid in enumerate(ids)}, coded, folded)


def code(codes: dict[str, int], classes: list[str], value: object, limit: int,
         folded: Counter[str]) -> int:
    """The index of a class in `classes` (`codes` its index), appending a class not seen.

    Beyond `limit` classes (or for a name too long to be one) the value is `_other`, counted
    in `folded`: free text as predictions must not make a class, and a k x k matrix, each.
    """
    name = class_name(value)
    index = codes.get(name)
    if index is None:
        if name != OTHER and (len(classes) >= limit or len(name) > MAX_NAME):
            folded["class"] += 1
            name = OTHER
            index = codes.get(name)
            if index is not None:
                return index
        index = codes[name] = len(classes)
        classes.append(name)
    return index


def _groups(samples: Sequence[Sample], names: Names, folded: Counter[str]) -> np.ndarray | None:
    """The group of each sample; beyond the stream's `max_groups`, `_other`."""
    groups = [s.group for s in samples]
    if all(g is None for g in groups):
        return None
    before = names.folded
    out = np.array([None if g is None else names.fold(g) for g in groups], object)
    folded["group"] += names.folded - before
    return out


def to_number(value: object) -> float:
    """A regression prediction or label; NaN (no number) for anything else, including an
    integer beyond any float (a 400-digit JSON number crashed the pane build)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.nan
    return math.nan


def _scores(samples: Sequence[Sample], classes: list[str], codes: dict[str, int],
            positive: str, *, limit: int, folded: Counter[str]) -> dict[str, np.ndarray]:
    """Score columns by class name; the scores of classes folded into `_other` add up."""
    n = len(samples)
    out: dict[str, np.ndarray] = {}
    if all(s.scores is None for s in samples):  # binary `score` only: one column, made in C
        values = [s.score for s in samples]
        scored = n - values.count(None)
        if scored:
            before = folded["class"]
            name = classes[code(codes, classes, positive, limit, folded)]
            if folded["class"] > before:  # folded into `_other`: counted once per score
                folded["class"] += scored - 1
            out[name] = np.array(values, dtype=np.float64)  # None becomes NaN (absent)
        return out
    for i, sample in enumerate(samples):
        given = sample.scores
        if given is None and sample.score is not None:
            given = {positive: sample.score}
        if not given:
            continue
        for name, value in given.items():
            name = classes[code(codes, classes, name, limit, folded)]  # noqa: PLW2901
            column = out.get(name)
            if column is None:
                column = out[name] = np.full(n, np.nan)
            column[i] = value if math.isnan(column[i]) else column[i] + value
    return out


def _probabilities_only(scores: dict[str, np.ndarray]) -> int:
    """Scores outside [0, 1] (logits, margins) become NaN, as if absent, and are counted:
    every score-based metric and estimate assumes probabilities, and a logit made the
    estimated accuracy 2.1 and ROC AUC 14."""
    outside = 0
    for column in scores.values():
        bad = (column < 0.0) | (column > 1.0)  # NaN (absent) is neither
        if bad.any():
            outside += int(np.count_nonzero(bad))
            column[bad] = np.nan
    return outside


_rows = msgspec.json.Decoder(list[dict[str, Any]])


def feature_rows(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Every sample's features; the raw JSON of a whole pane decoded in one call if it can."""
    raw = [s.features_json for s in samples]
    if all(raw):
        try:
            return _rows.decode(b"[" + b",".join(raw) + b"]")
        except (msgspec.DecodeError, RecursionError):
            pass  # an odd value somewhere: sample by sample, with the lenient rules
    return [feature_values(s) for s in samples]


def _features(samples: Sequence[Sample], declared: dict[str, FeatureSpec],
              bounds: StreamNames, folded: Counter[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, Counter[str]]]:
    """Declared features, then the first `max_features` others the stream saw (kept for good,
    so the set is stable); other names count under `_other` as `too_many_features`."""
    rows = feature_rows(samples)
    seen: set[str] = set()
    for row in rows:
        seen.update(row)
    known = bounds.features
    room = bounds.max_features - len(declared) - len(known)
    if room > 0 and (new := seen - declared.keys() - known.keys()):
        known.update(dict.fromkeys(n for n in sorted(new)[:room] if len(n) <= MAX_NAME))
    names = [*declared, *(name for name in known if name in seen)]
    block = _numeric_block(rows, names, declared)
    columns: dict[str, np.ndarray] = {}
    quality: dict[str, Counter[str]] = {}  # only the features with an issue
    for name in names:
        found = block.get(name)
        if found is None:
            found = _column([row.get(name) for row in rows], name, rows, declared.get(name))
        columns[name], issues = found
        if issues:
            quality[name] = issues
    if len(names) < len(seen | declared.keys()):
        kept = set(names)
        excess = sum(1 for row in rows for name in row if name not in kept)
        quality[OTHER_FEATURE] = Counter(too_many_features=excess)
        folded["feature"] += excess
    return columns, quality


def _numeric_block(rows: list[dict[str, Any]], names: list[str],
                   declared: dict[str, FeatureSpec]
                   ) -> dict[str, tuple[np.ndarray, Counter[str] | None]]:
    """The numeric features every row has, converted in one call: a window of 100 rows and
    20 features paid ~10 us per feature in per-column set-up, a fifth of a small window's
    cost. Only columns `_column` would make the same way: numbers (by the declared type, or
    by the first row's value as `_infer` decides) present and not null in every row. A
    column with a null, or any odd value anywhere, is left to `_column`."""
    if not rows:
        return {}
    first = rows[0]
    chosen = [name for name in names if name in first and _numeric_kind(
        first[name], declared.get(name))]
    if len(chosen) < 2:  # itemgetter of one name gives no tuple; nothing to share anyway
        return {}
    try:
        table = np.array(list(map(operator.itemgetter(*chosen), rows)), dtype=np.float64)
    except (KeyError, ValueError, TypeError, OverflowError):  # a row without one, odd values
        return {}
    if table.shape != (len(rows), len(chosen)):  # lists of one length in every row
        return {}
    table = np.ascontiguousarray(table.T)  # one row per feature: each column contiguous
    nulls = np.isnan(table).sum(axis=1).tolist()  # None made NaN: `_column`'s
    infinite = np.isinf(table)
    counts = infinite.sum(axis=1).tolist()  # per feature: one call, not one per feature
    out = {}
    for i, name in enumerate(chosen):
        if nulls[i]:
            continue
        column = table[i]
        if counts[i]:
            column[infinite[i]] = np.nan
        bad = _out_of_range(column, declared.get(name))
        issues = None  # most features have none: no Counter for them
        if counts[i] or bad:
            issues = +Counter(non_finite=counts[i], out_of_range=bad)  # the non-zero ones
        out[name] = (column, issues)
    return out


def _numeric_kind(value: Any, spec: FeatureSpec | None) -> bool:
    if spec is not None:
        return spec.type == "number"
    return isinstance(value, int | float) and not isinstance(value, bool)


def _column(values: list[Any], name: str, rows: list[dict[str, Any]],
            spec: FeatureSpec | None) -> tuple[np.ndarray, Counter[str]]:
    """`values` has None for both absent and null; `rows` tells them apart when it matters."""
    issues: Counter[str] = Counter()
    nones = values.count(None)
    if nones:
        absent = sum(1 for row in rows if name not in row)
        if absent and (spec is None or spec.required):
            issues["missing"] = absent
        if nones > absent and (spec is None or not spec.nullable):
            issues["null"] = nones - absent
    kind = spec.type if spec is not None else _infer(values)
    if kind == "number":
        column = _numbers(values, issues)
        issues["out_of_range"] += _out_of_range(column, spec)
    else:
        allowed = set(spec.categories) if spec is not None and spec.categories else None
        column = np.empty(len(values), object)
        for i, value in enumerate(values):
            column[i] = _category(value, issues, allowed)
    return column, +issues


def _out_of_range(column: np.ndarray, spec: FeatureSpec | None) -> int:
    """Values outside the declared min and max (NaN, absent or invalid, is neither)."""
    if spec is None or (spec.min is None and spec.max is None):
        return 0
    finite = column[~np.isnan(column)]
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max
    return int(np.count_nonzero((finite < low) | (finite > high)))


def _infer(values: list[Any]) -> str:
    """By the first present value: a string (or anything but a number) makes a category."""
    for value in values:
        if value is not None:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return "number" if number else "category"
    return "number"


def _numbers(values: list[Any], issues: Counter[str]) -> np.ndarray:
    """numpy converts a clean column in C; only a column with odd values goes value by value.

    Booleans count as 0/1, and numeric strings as their numbers (numpy's own rule).
    """
    try:
        column = np.array(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        column = np.empty(len(values))
        for i, value in enumerate(values):
            column[i] = _numeric(value, issues)
        return column
    if column.ndim != 1:  # every value a list of the same length
        issues["wrong_type"] += len(values) - values.count(None)
        return np.full(len(values), np.nan)
    infinite = np.isinf(column)
    if infinite.any():
        issues["non_finite"] += int(infinite.sum())
        column[infinite] = np.nan
    return column


def _numeric(value: Any, issues: Counter[str]) -> float:
    if value is None:
        return math.nan
    if not isinstance(value, int | float):
        issues["wrong_type"] += 1
        return math.nan
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float (JSON allows 400 digits)
        number = math.inf
    if not math.isfinite(number):
        issues["non_finite"] += 1
        return math.nan
    return number


def _category(value: Any, issues: Counter[str], allowed: set[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | dict):
        issues["wrong_type"] += 1
        return None
    name = class_name(value)[:MAX_CATEGORY]
    if allowed is not None and name not in allowed:
        issues["unseen_category"] += 1
    return name
