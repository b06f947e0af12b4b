"""Plugin metrics as whole snapshots: each collection replaces the last, so nothing goes stale.

A collector fills an `Accumulator`; the supervisor commits it only if the collection succeeded.
Series of a device that disappeared are simply absent from the next snapshot. Each plugin has a
series budget; what does not fit is refused and counted, never silently grown.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

_NAME = re.compile(r"^inferwatch_[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_LABEL_VALUE = 256

Labels = tuple[str, ...]
Family = CounterMetricFamily | GaugeMetricFamily
# Every metric name declared in this process, so a rule over a misspelt one can be refused.
DECLARED: set[str] = set()
Part = tuple["MetricDef", dict[Labels, float]]  # one plugin's series of a family
_KEY_VERSIONS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class MetricDef:
    """A metric's identity; declared once at module level so docs and tests can list them."""

    name: str
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    labels: Labels = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match {_NAME.pattern}")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters and only counters end in _total")
        if bad := [n for n in self.labels if not _LABEL.match(n)]:
            raise ValueError(f"{self.name}: invalid label names {bad}")
        DECLARED.add(self.name)


def gauge(name: str, help: str, *labels: str) -> MetricDef:
    return MetricDef(name, help, "gauge", labels)


def counter(name: str, help: str, *labels: str) -> MetricDef:
    return MetricDef(name, help, "counter", labels)


class Accumulator:
    """What one collection observed: values keyed by metric and label values."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        self.series: dict[MetricDef, dict[Labels, float]] = {}

    def add(self, metric: MetricDef, value: float, /, **labels: str) -> None:
        try:
            key = tuple(str(labels[n])[:MAX_LABEL_VALUE] for n in metric.labels)
        except KeyError:
            key = ()
        if len(labels) != len(metric.labels) or len(key) != len(labels):
            raise ValueError(f"{metric.name} takes labels {metric.labels}, got {tuple(labels)}")
        self.series.setdefault(metric, {})[key] = float(value)

    def put(self, metric: MetricDef, key: Labels, value: float, /) -> None:
        """add() without its checks, for many series at once (a monitor's window): `key` is
        the label values in `metric.labels` order, each at most MAX_LABEL_VALUE long."""
        self.series.setdefault(metric, {})[key] = value

    def __len__(self) -> int:
        return sum(len(v) for v in self.series.values())


class KeyedSeries(dict[Labels, float]):
    """A metric's committed series with `keys_version`: the number stays the same while the
    label sets are those of the previous commit, whatever the values, so a reader that caches
    work per label set (alert rule selections, plugins/alerts/series.py) compares one number
    per evaluation instead of reading every key. The label sets are told apart by a 64-bit
    hash of the key tuples, taken at the commit while they are still in the CPU's cache (a
    collision, about 2**-64 per change, would keep a reader's cache until the next change)."""

    __slots__ = ("keys_digest", "keys_version")
    keys_digest: int
    keys_version: int


def keyed(values: dict[Labels, float], previous: dict[Labels, float] | None) -> KeyedSeries:
    """`values` (copied) as committed after `previous`, the same metric's last commit."""
    out = KeyedSeries(values)
    out.keys_digest = hash(tuple(out)) ^ len(out)
    if isinstance(previous, KeyedSeries) and previous.keys_digest == out.keys_digest:
        out.keys_version = previous.keys_version
    else:
        out.keys_version = next(_KEY_VERSIONS)
    return out


class Exports:
    """The series a component exports from its own state, by part (a stream, say).

    A monitor fills a part's Accumulator in its worker thread, with the window the values
    describe, and puts it here on the event loop where it commits that window's state; the
    supervisor commits the whole to the plugin's store after the monitor started and after
    its windows (`version` says when it changed), so a scrape reads committed values only
    and no collector reaches into the monitor's state. A put replaces that part alone.

    `wanted` is False where nothing reads them (`inferwatch replay` has no exporter): a
    monitor then skips building its per-window series, a tenth of a small window's cost.
    """

    __slots__ = ("_parts", "version", "wanted")

    def __init__(self) -> None:
        self._parts: dict[Hashable, Accumulator] = {}
        self.version = 0
        self.wanted = True

    def put(self, part: Hashable, acc: Accumulator) -> None:
        self._parts[part] = acc
        self.version += 1

    def drop(self, part: Hashable) -> None:
        if self._parts.pop(part, None) is not None:
            self.version += 1

    def merged(self) -> Accumulator:
        """Every part in one Accumulator, in the order the parts were first put."""
        out = Accumulator()
        for part in list(self._parts.values()):
            for metric, values in part.series.items():
                out.series.setdefault(metric, {}).update(values)
        return out


class PluginMetrics:
    """One plugin's committed snapshots, one per component, within the plugin's series budget."""

    def __init__(self, plugin: str, limit: int) -> None:
        self.plugin = plugin
        self.limit = limit
        self.refused_total = 0
        self.version = 0  # bumped on every change, so renderings can be cached between them
        self._snapshots: dict[str, dict[MetricDef, dict[Labels, float]]] = {}
        self._lock = threading.Lock()

    def commit(self, component: str, acc: Accumulator) -> int:
        """Replace `component`'s snapshot; return how many series were refused by the budget."""
        with self._lock:
            others = sum(
                len(v) for c, s in self._snapshots.items() if c != component for v in s.values()
            )
            room = max(self.limit - others, 0)
            series, refused = _truncate(acc.series, room)
            last = self._snapshots.get(component, {})
            self._snapshots[component] = {m: keyed(v, last.get(m)) for m, v in series.items()}
            self.refused_total += refused
            self.version += 1
            return refused

    def drop(self, component: str) -> None:
        with self._lock:
            if self._snapshots.pop(component, None) is not None:
                self.version += 1

    def items(self) -> list[tuple[MetricDef, dict[Labels, float]]]:
        with self._lock:
            return [item for snap in self._snapshots.values() for item in snap.items()]


def _truncate(
    series: dict[MetricDef, dict[Labels, float]], room: int
) -> tuple[dict[MetricDef, dict[Labels, float]], int]:
    total = sum(len(v) for v in series.values())
    if total <= room:
        return series, 0
    kept: dict[MetricDef, dict[Labels, float]] = {}
    for metric, values in series.items():
        take = dict(list(values.items())[:room])
        room -= len(take)
        if take:
            kept[metric] = take
    return kept, total - sum(len(v) for v in kept.values())


class SnapshotCollector(Collector):
    """Renders plugin snapshots at scrape time; a name two plugins define goes to the first."""

    def __init__(self) -> None:
        self._plugins: dict[str, PluginMetrics] = {}

    def version(self) -> tuple[tuple[str, int, int], ...]:
        """Changes whenever any attached plugin's snapshot (or the set of plugins) changes."""
        return tuple((s.plugin, id(s), s.version) for s in self._plugins.values())

    def attach(self, store: PluginMetrics) -> None:
        self._plugins[store.plugin] = store

    def detach(self, plugin: str) -> None:
        self._plugins.pop(plugin, None)

    def families(self) -> dict[str, tuple[MetricDef, list[Part]]]:
        """Every plugin's series grouped by metric name, in first-seen order.

        A definition with the same name, kind and help but other labels joins the family
        (the MQTT sink's `inferwatch_sink_delivered_total{sink}` beside the core's
        `{plugin,sink}`: Prometheus takes differing label sets in one family); one that
        differs otherwise is dropped (the first definition wins)."""
        merged: dict[str, tuple[MetricDef, list[Part]]] = {}
        for store in list(self._plugins.values()):
            for metric, values in store.items():
                known = merged.setdefault(metric.name, (metric, []))
                if _joins(known[0], metric):
                    known[1].append((metric, values))
        return merged

    def collect(self) -> Iterator[Metric]:
        for metric, parts in self.families().values():
            family = _family(metric)
            for part, values in parts:
                for labels, value in values.items():
                    family.samples.append(Sample(family.name + _suffix(metric),
                                                 dict(zip(part.labels, labels, strict=True)),
                                                 value))
            yield family


def _joins(first: MetricDef, other: MetricDef) -> bool:
    return first == other or (first.kind, first.help) == (other.kind, other.help)


def _suffix(metric: MetricDef) -> str:
    return "_total" if metric.kind == "counter" else ""


def _family(metric: MetricDef) -> Family:
    if metric.kind == "counter":
        return CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
    return GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
