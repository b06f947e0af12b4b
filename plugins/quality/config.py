"""`[plugins.quality]`: thresholds with hysteresis, the cost matrix, fairness and CBPE."""

from __future__ import annotations

from typing import Annotated

import msgspec

from agent.config import FieldError, PluginConfig

MIN_SAMPLES = 500  # rows below which a metric's own value is not judged
GAP_MIN_SAMPLES = 100  # `<metric>_gap`: its sampling error decides; below this, not even that


class Threshold(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Trigger below `below` (or above `above`); clear only past `clear` (hysteresis).

    A `<metric>_gap` (realized minus estimated) triggers only when it also exceeds its own
    sampling error at the window's number of labelled rows: a fixed row count either missed
    a large gap on a modest window or paged on noise on a small one.
    """

    below: float | None = None
    above: float | None = None
    clear: float | None = None  # default: the trigger itself (no hysteresis)
    # None: MIN_SAMPLES, or GAP_MIN_SAMPLES for a gap (whose sampling error is the real test)
    min_samples: Annotated[int, msgspec.Meta(ge=1)] | None = None
    enabled: bool = True  # false: turns off a default threshold (`accuracy_gap`)

    def __post_init__(self) -> None:
        if not self.enabled and self.below is None and self.above is None:
            return
        if (self.below is None) == (self.above is None):
            raise FieldError("below", "set exactly one of `below` and `above`")
        if self.clear is not None:
            if self.below is not None and self.clear < self.below:
                raise FieldError("clear", "must be at or above `below`")
            if self.above is not None and self.clear > self.above:
                raise FieldError("clear", "must be at or below `above`")

    def floor(self, metric: str) -> int:
        """The fewest rows on which `metric` is judged at all."""
        if self.min_samples is not None:
            return self.min_samples
        return GAP_MIN_SAMPLES if metric.endswith("_gap") else MIN_SAMPLES

    def crossed(self, value: float) -> bool:
        return value < self.below if self.below is not None else value > (self.above or 0.0)

    def cleared(self, value: float) -> bool:
        if self.below is not None:
            return value >= (self.clear if self.clear is not None else self.below)
        return value <= (self.clear if self.clear is not None else self.above or 0.0)


class Cost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Binary: `tp`, `fp`, `fn`, `tn`. Multiclass: `matrix[true][predicted]` over `classes`.

    Costs are positive, values of correct outcomes negative (or the reverse: be consistent).
    """

    currency: str = "USD"
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0
    classes: list[str] = msgspec.field(default_factory=list)
    matrix: list[list[float]] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.matrix and (len(self.matrix) != len(self.classes) or any(
                len(row) != len(self.classes) for row in self.matrix)):
            raise FieldError("matrix", "must be square, one row and column per class")


class ModelQuality(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    thresholds: dict[str, Threshold] = msgspec.field(default_factory=dict)  # added to global
    cost: Cost | None = None


# Concept drift: the labels disagree with confident scores. 0.05 is the effect floor; the
# gap must also exceed its sampling error (plugins/quality/monitor.py, `_judge`). Thresholds
# in the file add to these (`enabled = false` turns one off): configuring an accuracy alarm
# must not silently take the concept-drift alarm away.
DEFAULT_THRESHOLDS = {"accuracy_gap": Threshold(above=0.05, clear=0.03)}


class QualityConfig(PluginConfig):
    needs = ("ingest",)  # it reads the windows ingest publishes
    enabled: bool = False  # with [plugins.ingest]: it reads the windows ingest publishes
    thresholds: dict[str, Threshold] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    models: dict[str, ModelQuality] = msgspec.field(default_factory=dict)
    reference_samples: Annotated[int, msgspec.Meta(ge=100)] = 5000  # labelled, for CBPE
    # A quality.window event (info) per final window: what MLflow and MQTT consumers record.
    window_events: bool = True
    min_group_size: Annotated[int, msgspec.Meta(ge=1)] = 100
    max_groups: Annotated[int, msgspec.Meta(ge=2, le=1000)] = 20
    max_classes: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 50  # per-class series
