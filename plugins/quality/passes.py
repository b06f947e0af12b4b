"""What a window's first pass hands its final pass, and a pass's view of the labelled rows.

A tumbling window is computed twice over the same rows: when it closes (its first pass) and
when its labels are in (its final pass). The final pass reuses what cannot have changed, and
checks it could not: the label column's digest, the calibration object, the very arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.window import Window
from plugins.quality.cbpe import Calibration
from plugins.quality.classification import Ranked


@dataclass(slots=True)
class Handover:
    """A small window's arrays as its first pass saw them: its final pass, holding the very
    same (read-only) score matrix and predictions, takes the normalised scores as they are,
    and the labelled rows' estimate, made beside the realized metrics, while the labels and
    the calibration are those of the first pass."""

    scores: np.ndarray | None
    y_pred: np.ndarray
    positive: int
    proba: np.ndarray | None
    same_rows: dict[str, Any] | None  # estimate() of the labelled rows under `calibration`

    def holds(self, window: Window) -> bool:
        return (self.scores is window.scores and self.y_pred is window.y_pred
                and self.positive == window.positive)


@dataclass
class FirstPass:
    """What a window's first (not final) pass found. Its final pass covers the same rows and
    scores: the label-free estimate holds while the calibration does, and the realized
    metrics while no label came in between (`labels`: a digest of the label column)."""

    rows: int
    classes: tuple[str, ...]
    labels: bytes
    metrics: dict[str, Any]
    estimated: dict[str, Any] | None
    calibration: Calibration | None
    handover: Handover | None = None


class Labelled:
    """A window's labelled rows, the columns cut to them once, where a pass needs them (a
    final pass that reuses its first pass's numbers needs none). `realized`, `estimated`:
    this pass computes their realized metrics, their estimate; where it does both for a
    binary model, the two share one ranking of the rows by score."""

    def __init__(self, window: Window, mask: np.ndarray, scores: np.ndarray | None) -> None:
        self.window, self.mask, self.scores = window, mask, scores
        self.n = int(np.count_nonzero(mask))
        self.realized = self.estimated = self.cut = False
        self.y_true = self.y_pred = mask[:0]  # until cut()
        self.proba: np.ndarray | None = None
        self._ranked: Ranked | None = None

    def cut_rows(self) -> Labelled:
        """The columns cut to the labelled rows (once)."""
        if not self.cut:
            window, mask = self.window, self.mask
            self.y_true, self.y_pred = window.y_true[mask], window.y_pred[mask]
            self.proba = None if self.scores is None else self.scores[mask]
            self.cut = True
        return self

    def ranked(self) -> Ranked | None:
        """The rows by score, once both need them (made by the first to ask)."""
        positive = self.window.positive
        if not (self.realized and self.estimated) or self.proba is None or positive < 0:
            return None
        if self._ranked is None:
            self._ranked = Ranked.of(self.proba[:, positive])
        return self._ranked
