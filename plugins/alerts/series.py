"""Selecting a rule's series from the read-back registry, and counters turned into increases.

Selections are cached per family part: a part whose label sets did not change since the last
evaluation (the usual case: values change, series do not) costs one set comparison in C, so
an evaluation costs what the rule selects, not the size of the registry.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent.metrics import Labels
from agent.readback import Families
from plugins.alerts.matchers import Matcher, compile_selector

Key = tuple[str, ...]


@dataclass
class _Cached:
    keys: frozenset[Key]
    selected: list[Key]


@dataclass
class Selection:
    """One rule's view of one metric: the label names and the matching (key, value) pairs."""

    metric: str
    matchers: list[Matcher]
    _names: Labels | None = None
    _predicate: Callable[[Key], bool] | None = None
    _cache: list[_Cached] = field(default_factory=list)

    def read(self, families: Families) -> tuple[Labels, Iterator[tuple[Key, float]]]:
        found = families.get(self.metric)
        if found is None:
            return (), iter(())
        names, parts = found
        if names != self._names or self._predicate is None:
            self._names, self._cache = names, []
            self._predicate = compile_selector(self.matchers, names)
        return names, self._pairs(parts)

    def _pairs(self, parts: list[dict[Key, float]]) -> Iterator[tuple[Key, float]]:
        assert self._predicate is not None  # noqa: S101 - set by read()
        del self._cache[len(parts):]
        for i, part in enumerate(parts):
            cached = self._cache[i] if i < len(self._cache) else None
            if cached is None or part.keys() != cached.keys:
                cached = _Cached(frozenset(part), [k for k in part if self._predicate(k)])
                if i < len(self._cache):
                    self._cache[i] = cached
                else:
                    self._cache.append(cached)
            for key in cached.selected:
                yield key, part[key]


class Counter:
    """A counter's history as a running total that survives resets (a restart of whatever
    counts: the value drops, and the new value is all new increase), downsampled so a long
    range keeps about `points` samples."""

    __slots__ = ("last", "points", "spacing", "total")

    def __init__(self, range_: float, points: int = 60) -> None:
        self.last: float | None = None
        self.total = 0.0
        self.spacing = range_ / points
        self.points: deque[tuple[float, float]] = deque()

    def observe(self, now: float, value: float) -> None:
        if self.last is not None:
            self.total += value - self.last if value >= self.last else value
        self.last = value
        if not self.points or now - self.points[-1][0] >= self.spacing:
            self.points.append((now, self.total))  # between points, `total` is current

    def increase(self, now: float, range_: float) -> tuple[float, float] | None:
        """(increase, seconds it spans) over the last `range_`; None until the history
        reaches back that far (a fresh start judges nothing it has not seen)."""
        start = now - range_
        while len(self.points) > 1 and self.points[1][0] <= start:
            self.points.popleft()
        if not self.points or self.points[0][0] > start + self.spacing:
            return None
        first_t, first_total = self.points[0]
        return self.total - first_total, max(now - first_t, 1e-9)


def apply(function: str, counters: dict[Key, Counter], key: Key, value: float, *,
          now: float, range_: float) -> float | None:
    """The value a rule judges for one series: as is, or its increase or per-second rate."""
    if function == "value":
        return value
    counter = counters.get(key)
    if counter is None:
        counter = counters[key] = Counter(range_)
    counter.observe(now, value)
    found = counter.increase(now, range_)
    if found is None:
        return None
    increase, span = found
    return increase if function == "increase" else increase / span


def ratio(numerator: float, denominator: float) -> float | None:
    if denominator:
        return numerator / denominator
    return math.inf if numerator > 0 else None
