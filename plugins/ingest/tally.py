"""Counts of what the listeners accepted and refused, and the hand-off to the pipeline."""

from __future__ import annotations

import time
from collections import Counter

from agent.model import Label, Sample
from plugins.ingest.bounds import OTHER, TOO_MANY_MODELS
from plugins.ingest.pipeline import UNKNOWN_MODEL, Pipeline

REFUSED = (UNKNOWN_MODEL, TOO_MANY_MODELS)  # sampled out still counts as received


class Tally:
    """Counts by model, with model names capped so clients cannot make series unbounded."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self.received: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.refused_requests: Counter[str] = Counter()  # whole HTTP requests, by reason
        self.connections = 0
        self.bytes = 0
        self.pipeline: Pipeline | None = None
        self._models: set[str] = set()

    def model(self, name: str) -> str:
        """The series label for a model: its name if the pipeline gave it a slot, or while
        `max_models` other names (labels for models not seen yet, say) fit; else _other."""
        if self.pipeline is not None and name in self.pipeline.windows.admission.models:
            return name
        if name in self._models or len(self._models) < self.max_models:
            self._models.add(name)
            return name
        return OTHER

    def count_many(self, decoded: list[tuple[Sample | Label | None, str]]) -> list[str]:
        """Count decoded records (a reason each for those unusable) and pass the rest on."""
        reasons = [why for _, why in decoded]
        for why in reasons:
            if why:
                self.rejected[("", why)] += 1
        usable = [r for r, _ in decoded if r is not None]
        refused = self.accept(usable) if usable else {}
        if refused:
            where = [i for i, (r, _) in enumerate(decoded) if r is not None]
            for j, why in refused.items():
                reasons[where[j]] = why
        return reasons

    def accept(self, records: list[Sample | Label]) -> dict[int, str]:
        """Usable records, as one batch: the reason by index for those refused."""
        refused: dict[int, str] = {}
        if self.pipeline is not None:
            refused = {i: why for i, why in
                       self.pipeline.offer_many(records, time.time()).items()
                       if why in REFUSED}
        if refused:
            for why in refused.values():
                self.rejected[(OTHER, why)] += 1
            records = [r for i, r in enumerate(records) if i not in refused]
        samples = Counter(r.model for r in records if type(r) is Sample)
        for name, count in samples.items():
            self.received[self.model(name)] += count
        if samples.total() < len(records):
            for name, count in Counter(r.model for r in records if type(r) is Label).items():
                self.labels[self.model(name)] += count
        return refused
