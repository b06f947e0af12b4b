"""`[plugins.ingest.models.<name>]`: a model's schema, sampling policy and windows.

Declaring models is optional; once any is declared, records for other models are rejected
(`unknown_model`), which keeps a typo in a client from creating a model nobody watches.
"""

from __future__ import annotations

import zlib
from typing import Annotated, Literal

import msgspec

from agent.config import FieldError
from agent.window import WindowSpec

HASH_SPACE = 1 << 32
MAX_STRATA = 100  # predicted classes with a budget share of their own; the rest share one


class FeatureSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["number", "category"] = "number"
    required: bool = True  # absent counts as `missing`
    nullable: bool = False  # null counts as `null` unless allowed
    min: float | None = None
    max: float | None = None
    categories: list[str] = msgspec.field(default_factory=list)  # empty: any category

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldError("min", f"min ({self.min}) is above max ({self.max})")
        if self.type == "category" and (self.min is not None or self.max is not None):
            raise FieldError("min", "a category feature has no range")


class ModelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    task: Literal["auto", "classification", "regression"] = "auto"
    classes: list[str] = msgspec.field(default_factory=list)  # known up front: stable columns
    positive_class: str = "1"
    windows: list[str] = msgspec.field(default_factory=list)  # empty: the plugin's `windows`
    features: dict[str, FeatureSpec] = msgspec.field(default_factory=dict)
    sample_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    max_samples_per_second: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0: no budget
    stratify: bool = False  # share the budget equally among predicted classes

    def __post_init__(self) -> None:
        for i, text in enumerate(self.windows):
            try:
                WindowSpec.parse(text)
            except ValueError as exc:
                raise FieldError(f"windows[{i}]", str(exc)) from None


def request_hash(request_id: str) -> int:
    """CRC32 of the request id: what the client SDK samples by, so every stage agrees."""
    return zlib.crc32(request_id.encode())


def keep_by_hash(request_id: str, rate: float) -> bool:
    """The client SDK's rule, so predictions and their labels are sampled alike."""
    return rate >= 1.0 or request_hash(request_id) < rate * HASH_SPACE


class Budget:
    """A token bucket per stratum, `per_second` shared equally; time is the caller's clock."""

    def __init__(self, per_second: float, *, stratify: bool) -> None:
        self.per_second, self.stratify = per_second, stratify
        self._tokens: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def take(self, stratum: str, now: float) -> bool:
        if not self.per_second:
            return True
        key = stratum if self.stratify else ""
        if key not in self._tokens and len(self._tokens) >= MAX_STRATA:
            key = "_other"  # free text as predictions must not make a bucket each
        if key not in self._tokens:
            self._tokens[key], self._last[key] = self._share(), now
        rate = self._share()
        tokens = min(rate, self._tokens[key] + (now - self._last[key]) * rate)
        self._last[key] = now
        if tokens >= 1.0:
            self._tokens[key] = tokens - 1.0
            return True
        self._tokens[key] = tokens
        return False

    def _share(self) -> float:
        return max(self.per_second / max(1, len(self._tokens)), 1e-9)

