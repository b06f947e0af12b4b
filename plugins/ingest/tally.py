"""Counts of what the listeners accepted and refused, and the hand-off to the pipeline."""

from __future__ import annotations

import time
from collections import Counter

from agent.model import Label, Sample
from plugins.ingest.pipeline import UNKNOWN_MODEL, Pipeline

OTHER = "_other"


class Tally:
    """Counts by model, with model names capped so clients cannot make series unbounded."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self.received: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.bytes = 0
        self.pipeline: Pipeline | None = None
        self._models: set[str] = set()

    def model(self, name: str) -> str:
        if name in self._models or len(self._models) < self.max_models:
            self._models.add(name)
            return name
        return OTHER

    def count_many(self, decoded: list[tuple[Sample | Label | None, str]]) -> list[str]:
        """Count decoded records and pass the usable ones on, as one batch."""
        reasons = [why for _, why in decoded]
        usable = [(i, r) for i, (r, _) in enumerate(decoded) if r is not None]
        for (_, why) in decoded:
            if why:
                self.rejected[("", why)] += 1
        verdicts = [""] * len(usable)
        if self.pipeline is not None and usable:
            verdicts = self.pipeline.offer_many([r for _, r in usable], time.time())
        for (i, record), verdict in zip(usable, verdicts, strict=True):
            if verdict == UNKNOWN_MODEL:
                self.rejected[(OTHER, UNKNOWN_MODEL)] += 1
                reasons[i] = verdict
                continue
            model = self.model(record.model)
            (self.received if isinstance(record, Sample) else self.labels)[model] += 1
        return reasons
