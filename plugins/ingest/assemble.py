"""A window from its panes: the columns each pane built once, concatenated, with the
stream's class order, scores, codes and data-quality rates (in the worker thread, or for a
running view of a window still open)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agent.window import Coded, Window, WindowSpec
from plugins.ingest import columns as col
from plugins.ingest.bounds import OTHER

if TYPE_CHECKING:  # the pane and stream types only: windows.py imports this module
    from plugins.ingest.windows import Pane, Stream


def assemble(stream: Stream, spec: WindowSpec, panes: list[Pane], *, final: bool,
             keep: bool = False) -> Window:
    """`keep`: leave what the window's final pass may take on the last pane (the same panes
    under the same class order hold the same rows): a tumbling window's whole first pass,
    whose arrays are its pane's anyway, and only the score matrix of a sliding one (its
    joined feature arrays, kept for the label wait, would cost a window's memory per step)."""
    parts = [p.columns for p in panes if p.columns is not None]
    classes, position, remap = stream.order()  # O(1) lookups: k may be large
    task = stream.task or "classification"
    made = panes[-1].first_made
    if not (final and made is not None and made.made_from(position, parts)):
        made = None
    elif made.window is not None:
        return _relabelled(made.window, task, remap, parts)
    if task == "classification":
        y_pred = remap[np.concatenate([p.y_pred for p in parts])]
        y_true = remap[np.concatenate([p.y_true for p in parts])]  # -1 stays -1
    else:
        y_pred = np.concatenate([p.y_pred for p in parts])
        y_true = np.concatenate([p.y_true for p in parts])
    rows = len(y_pred)
    scores = made.matrix if made is not None else _score_matrix(parts, position, rows)
    if scores is not None:
        scores.flags.writeable = False  # shared by the window's two passes
    positive = position.get(stream.config.positive_class, -1) if len(classes) == 2 else -1
    features = _concat_features(parts)
    coded = _concat_coded(parts, features)
    groups = [p.group if p.group is not None else np.full(len(p.y_pred), None, object)
              for p in parts]
    group = np.concatenate(groups) if any(p.group is not None for p in parts) else None
    n = sum(p.seen for p in panes)
    start = panes[-1].end - spec.size if not spec.by_count else float(
        parts[0].ts.min(initial=math.inf))
    end = panes[-1].end if not spec.by_count else float(parts[-1].ts.max(initial=-math.inf))
    if spec.by_count:
        start, end = (min(start, end), end) if rows else (0.0, 0.0)
    window = Window(model=stream.model, model_version=stream.version, spec=spec.name,
                    start=start, end=end, task=task, n=n, y_pred=y_pred, y_true=y_true,
                    classes=tuple(classes), positive=positive, scores=scores,
                    features=features, coded=coded, group=group,
                    quality=_quality(parts, rows), final=final)
    panes[-1].first_made = FirstMade(position, parts, scores, window if len(parts) == 1
                                       else None) if keep else None
    return window


def _relabelled(first: Window, task: str, remap: np.ndarray, parts: list[col.Columns]
                ) -> Window:
    """The final pass of `first`'s tumbling window: its arrays (shared, read only), today's
    labels, and its dicts made again from the pane, so what a monitor added to them in the
    first pass does not reach the final one."""
    y_true = np.concatenate([p.y_true for p in parts])
    features = _concat_features(parts)
    return dataclasses.replace(
        first, y_true=remap[y_true] if task == "classification" else y_true, final=True,
        provisional=False, results={}, features=features,
        coded=_concat_coded(parts, features), quality=_quality(parts, first.rows))


@dataclass(frozen=True, slots=True)
class FirstMade:
    """A window's first pass and what it was made from (Pane.first_made): scores never
    change after a pane is built, only labels do. `window`: a tumbling window's first pass."""

    position: dict[str, int]
    parts: list[col.Columns]
    matrix: np.ndarray | None
    window: Window | None

    def made_from(self, position: dict[str, int], parts: list[col.Columns]) -> bool:
        """The same panes under the same class order (`position`: one object until a
        class is added, by a label say)."""
        return (self.position is position and len(self.parts) == len(parts)
                and all(a is b for a, b in zip(self.parts, parts, strict=True)))


def _score_matrix(parts: list[col.Columns], position: dict[str, int], rows: int
                  ) -> np.ndarray | None:
    """Scores by class; a pane's class folded since into `_other` adds to its column."""
    if not any(p.scores for p in parts):
        return None
    if len(parts) == 1 and len(parts[0].scores) == 1 and len(position) == 2:
        (name, values), = parts[0].scores.items()  # a binary `score`: its complement beside
        k = position.get(name, position.get(OTHER))
        if k is not None:
            matrix = np.empty((rows, 2))
            matrix[:, k] = values
            np.subtract(1.0, values, out=matrix[:, 1 - k])  # NaN (absent) stays NaN
            return matrix
    matrix = np.full((rows, len(position)), np.nan)
    offset = 0
    for part in parts:
        size = len(part.y_pred)
        filled: set[int] = set()
        for name, values in part.scores.items():
            k = position.get(name, position.get(OTHER))
            if k is None:
                continue
            if k not in filled:  # the column's first scores in this pane: as they are
                matrix[offset:offset + size, k] = values
                filled.add(k)
                continue
            block = matrix[offset:offset + size, k]
            matrix[offset:offset + size, k] = np.where(np.isnan(block), values,
                                                       block + np.nan_to_num(values))
        offset += size
    if len(position) == 2:  # a binary `score` gave one column: the other is its complement
        for k in (0, 1):
            gap = np.isnan(matrix[:, k]) & ~np.isnan(matrix[:, 1 - k])
            matrix[gap, k] = 1.0 - matrix[gap, 1 - k]
    return matrix


def _concat_features(parts: list[col.Columns]) -> dict[str, np.ndarray]:
    if len(parts) == 1:  # a tumbling window: the pane's arrays as they are (read only)
        return dict(parts[0].features)
    names: dict[str, None] = {}
    for part in parts:
        names.update(dict.fromkeys(part.features))
    out = {}
    for name in names:
        pieces = [p.features.get(name) for p in parts]
        numeric = all(x is None or x.dtype != object for x in pieces)
        filled = [x if x is not None else
                  (np.full(len(p.y_pred), np.nan) if numeric
                   else np.full(len(p.y_pred), None, object))
                  for x, p in zip(pieces, parts, strict=True)]
        if not numeric:
            filled = [x.astype(object) for x in filled]
        out[name] = np.concatenate(filled) if filled else np.empty(0)
    return out


def _concat_coded(parts: list[col.Columns], features: dict[str, np.ndarray]
                  ) -> dict[str, Coded]:
    """Each pane's codes mapped onto the window's levels (first seen first); a pane without
    the feature gives -1 (missing), as its object column gives None."""
    if len(parts) == 1:  # the pane coded its categorical features, in their order
        return dict(parts[0].coded)
    out = {}
    for name, values in features.items():
        if values.dtype != object or any(name in p.features and name not in p.coded
                                         for p in parts):
            continue
        levels: dict[str, int] = {}
        pieces = []
        for part in parts:
            found = part.coded.get(name)
            if found is None:
                pieces.append(np.full(len(part.y_pred), -1, np.intp))
                continue
            remap = np.array([levels.setdefault(level, len(levels)) for level in found.levels]
                             + [-1], np.intp)
            pieces.append(remap[found.codes])  # -1 picks the last entry: still -1
        out[name] = Coded(np.concatenate(pieces) if pieces else np.empty(0, np.intp),
                          tuple(levels))
    return out


def _quality(parts: list[col.Columns], rows: int) -> dict[str, dict[str, float]]:
    if not rows:
        return {}
    totals: dict[str, Counter[str]] = {}
    for part in parts:
        for feature, issues in part.quality.items():
            if issues:  # most features of most panes have none: skip the Counter work
                totals.setdefault(feature, Counter()).update(issues)
    return {feature: {f"{issue}_ratio": count / rows for issue, count in sorted(issues.items())}
            for feature, issues in sorted(totals.items())}
