"""Selecting a rule's series from the read-back registry, and counters turned into increases.

Selections are cached per family part: a part whose label sets did not change since the last
evaluation (the usual case: values change, series do not) costs one number compared (the
commit's `keys_version`, see Signatures), so an evaluation costs about what the rules
select, not the size of the registry.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.metrics import KeyedSeries, Labels
from agent.readback import Families
from plugins.alerts.matchers import Matcher, compile_selector

Key = tuple[str, ...]


class Signatures:
    """For each metric, a token that stays the same object while the family holds the same
    series, worked out once per evaluation (whatever number of rules read the family). A
    part committed by the agent (a KeyedSeries) costs one number, its `keys_version`, which
    PluginMetrics.commit keeps while the label sets stay the same; any other part (the
    agent's own few dozen series, read back as new dicts every time) costs a hash of its
    key tuples (their 64-bit hash: comparing the tuples themselves reads every label string
    again and costs three times as much; a collision, about 2**-64 per change, would delay
    the selection of a new series until the family changes again). A rule's cached
    selection holds while the token is the one it was made for.

    Between evaluations only those numbers are kept, never the parts: holding the last
    evaluation's dicts (to know a part not recommitted by its identity) kept a whole
    generation of series alive after the collectors had replaced it, and the next
    evaluation paid for freeing it, which was most of its time when every part had been
    recommitted (bench/README.md). Keep one across evaluations; call next() before and
    after each (this evaluation's memo holds its parts).
    """

    def __init__(self) -> None:
        self._memo: dict[str, tuple[list[dict[Key, float]], object]] = {}
        self._last: dict[str, tuple[tuple[int, ...], object]] = {}

    def next(self) -> None:
        """Forget this evaluation's parts: what it saw stays as digests only."""
        self._memo = {}

    def of(self, metric: str, parts: list[dict[Key, float]]) -> object:
        found = self._memo.get(metric)
        if found is not None and found[0] is parts:
            return found[1]
        digest, last = _digest(parts), self._last.get(metric)
        token = last[1] if last is not None and last[0] == digest else object()
        self._last[metric] = (digest, token)
        self._memo[metric] = (parts, token)
        return token


def _digest(parts: list[dict[Key, float]]) -> tuple[int, ...]:
    if all(isinstance(part, KeyedSeries) for part in parts):  # the agent's commits
        return (-1, *(part.keys_version for part in parts))  # type: ignore[attr-defined]
    return tuple(hash(tuple(part)) ^ len(part) for part in parts)


@dataclass(slots=True)
class Selection:
    """One rule's view of one metric: the label names and the matching (key, value) pairs."""

    metric: str
    matchers: list[Matcher]
    _names: Labels | None = None
    _predicate: Callable[[Key], bool] | None = None
    _signature: object = None
    _selected: list[tuple[int, Key]] = field(default_factory=list)

    def read(self, families: Families, sigs: Signatures | None = None
             ) -> tuple[Labels, list[tuple[Key, float]]]:
        found = self.parts(families, sigs)
        if found is None:
            return (), []
        names, parts = found
        return names, [(key, parts[i][key]) for i, key in self._selected]

    def parts(self, families: Families, sigs: Signatures | None = None
              ) -> tuple[Labels, list[dict[Key, float]]] | None:
        """The family's label names and parts, with `selected` brought up to date."""
        found = families.get(self.metric)
        if found is None:
            return None
        names, parts = found
        if names != self._names or self._predicate is None:
            self._names, self._signature = names, None
            self._predicate = compile_selector(self.matchers, names)
        signature = (sigs or Signatures()).of(self.metric, parts)
        if signature is not self._signature:
            test = self._predicate
            self._selected = [(i, k) for i, part in enumerate(parts) for k in part if test(k)]
            self._signature = signature
        return names, parts

    @property
    def selected(self) -> list[tuple[int, Key]]:
        """(part index, key) of each selected series, as of the last parts()."""
        return self._selected


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
