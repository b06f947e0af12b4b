"""`[plugins.quality]`: thresholds with hysteresis, the cost matrix, fairness and CBPE."""

from __future__ import annotations

from typing import Annotated

import msgspec

from agent.config import FieldError, PluginConfig


class Threshold(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Trigger below `below` (or above `above`); clear only past `clear` (hysteresis)."""

    below: float | None = None
    above: float | None = None
    clear: float | None = None  # default: the trigger itself (no hysteresis)
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 500

    def __post_init__(self) -> None:
        if (self.below is None) == (self.above is None):
            raise FieldError("below", "set exactly one of `below` and `above`")
        if self.clear is not None:
            if self.below is not None and self.clear < self.below:
                raise FieldError("clear", "must be at or above `below`")
            if self.above is not None and self.clear > self.above:
                raise FieldError("clear", "must be at or below `above`")

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


DEFAULT_THRESHOLDS = {"accuracy_gap": Threshold(above=0.05, clear=0.03, min_samples=1000)}


class QualityConfig(PluginConfig):
    needs = ("ingest",)  # it reads the windows ingest publishes
    enabled: bool = False  # with [plugins.ingest]: it reads the windows ingest publishes
    thresholds: dict[str, Threshold] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    models: dict[str, ModelQuality] = msgspec.field(default_factory=dict)
    reference_samples: Annotated[int, msgspec.Meta(ge=100)] = 5000  # labelled, for CBPE
    min_group_size: Annotated[int, msgspec.Meta(ge=1)] = 100
    max_groups: Annotated[int, msgspec.Meta(ge=2, le=1000)] = 20
    max_classes: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 50  # per-class series
