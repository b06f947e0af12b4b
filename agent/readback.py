"""The agent's own series read back in-process, for plugins that evaluate them (alert rules).

No text rendering and no parsing: plugin snapshots are handed over as they are (one dict of
label values to value per component), the agent's own few dozen series go through
prometheus-client's collect(). Shape: `{sample name: (label names, [{label values: value}])}`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent.metrics import Labels, SnapshotCollector

Families = dict[str, tuple[Labels, list[dict[Labels, float]]]]


def read_families(live: CollectorRegistry, snapshots: SnapshotCollector) -> Families:
    """Every series the agent exports now, grouped by sample name (a summary's `_count` and
    `_sum` are names of their own, as in PromQL)."""
    # A family may join definitions with other label names (docs/sinks.md: MQTT's
    # `{sink}` beside the core's `{plugin,sink}`); a selector reads the first one's.
    out: Families = {name: (metric.labels, [values for part, values in parts
                                            if part.labels == metric.labels])
                     for name, (metric, parts) in snapshots.families().items()}
    # The live series go into dicts of their own: a name a plugin snapshot also has gets
    # one more part, and the committed snapshot (read by reference) is never written to.
    mine: dict[str, dict[Labels, float]] = {}
    for family in live.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            part = mine.get(sample.name)
            if part is None:
                part = mine[sample.name] = {}
                names = tuple(sample.labels)
                known = out.get(sample.name)
                if known is None or known[0] != names:
                    out[sample.name] = (names, [part])
                else:
                    known[1].append(part)
            part[tuple(sample.labels.values())] = float(sample.value)
    return out


def no_families() -> Families:
    """The read-back of a context outside the agent (tests, replay): nothing exported."""
    return {}
