"""Rendering /metrics: plugin snapshots rendered once per change, self-metrics every scrape.

Formatting is most of a scrape's cost in prometheus-client (~10 µs a sample). Plugin series are
plain gauges and counters that change once per collection interval, so they are formatted here
(byte-identical to prometheus-client, which a property test checks) and cached per format and
version. The agent's own series, a few dozen, go through prometheus-client on every scrape.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from agent.metrics import Labels, MetricDef, Part, SnapshotCollector


class Exposition:
    def __init__(self, live: CollectorRegistry, snapshots: SnapshotCollector) -> None:
        self._live, self._snapshots = live, snapshots
        self._cache: dict[bool, tuple[Hashable, bytes]] = {}

    def render(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for a scraper's Accept header."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        version = self._snapshots.version()
        hit = self._cache.get(openmetrics)
        if hit is None or hit[0] != version:
            hit = (version, render(self._snapshots.families().values(), openmetrics=openmetrics))
            self._cache[openmetrics] = hit
        return hit[1] + encoder(self._live), content_type


def render(families: Iterable[tuple[MetricDef, list[Part]]], *, openmetrics: bool) -> bytes:
    """Format gauge and counter families exactly as prometheus-client would, without # EOF."""
    out: list[str] = []
    for metric, parts in families:
        family = metric.name
        if openmetrics and metric.kind == "counter":
            family = family.removesuffix("_total")
        out.append(f"# HELP {family} {_escape_help(metric.help, openmetrics)}\n"
                   f"# TYPE {family} {metric.kind}\n")
        for part, values in parts:
            order = sorted(range(len(part.labels)), key=part.labels.__getitem__)
            for labels, value in values.items():
                out.append(f"{metric.name}{_labels(part.labels, labels, order)} "
                           f"{floatToGoString(value)}\n")
    return "".join(out).encode()


def _labels(names: Labels, values: Labels, order: list[int]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{names[i]}="{_escape_value(values[i])}"' for i in order)
    return "{" + pairs + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text
