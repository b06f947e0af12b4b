"""The columns the drift monitor reads from a window: the features, and the model's own
outputs (its score and its predicted class) as two more streams; the categorical ones also
as codes where they are to be had cheaply."""

from __future__ import annotations

import numpy as np

from agent.window import Coded, Window

__all__ = ["coded_columns", "drift_columns"]


def coded_columns(window: Window) -> dict[str, Coded]:
    """The categorical columns of drift_columns() as codes, where they are to be had cheaply."""
    coded = dict(window.coded)
    if window.task == "classification" and window.rows:
        no_class = len(window.classes)
        coded["__prediction"] = Coded(np.where(window.y_pred < 0, no_class, window.y_pred),
                                      (*window.classes, ""))
    return coded


def drift_columns(window: Window) -> dict[str, np.ndarray]:
    """The features, plus the model's own outputs: its score and its predicted class."""
    columns = dict(window.features)
    if window.task == "classification" and window.rows:
        names = np.array((*window.classes, ""), dtype=object)  # -1: no class, ""
        columns["__prediction"] = names[window.y_pred]
        if window.scores is not None:
            score = (window.scores[:, window.positive] if window.positive >= 0
                     # fmax skips NaN and, unlike nanmax, warns on no row that has none
                     else np.fmax.reduce(window.scores, axis=1) if window.scores.shape[1]
                     else None)
            if score is not None:
                columns["__score"] = score
    elif window.rows:
        columns["__prediction"] = window.y_pred.astype(np.float64)
    return columns
