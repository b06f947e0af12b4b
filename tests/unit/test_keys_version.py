"""PluginMetrics.commit keeps a metric's `keys_version` while its label sets stay the same,
and the alert engine relies on it to keep rule selections without reading every key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agent.metrics import Accumulator, KeyedSeries, PluginMetrics, SnapshotCollector, gauge
from agent.readback import read_families
from tests.plugins.alerts_helpers import Harness, config

LOAD = gauge("inferwatch_test_keys_load", "test", "model", "version")


def _commit(store: PluginMetrics, series: dict[tuple[str, str], float]) -> KeyedSeries:
    acc = Accumulator()
    for (model, version), value in series.items():
        acc.add(LOAD, value, model=model, version=version)
    store.commit("c", acc)
    (found,) = [v for m, v in store.items() if m is LOAD]
    assert isinstance(found, KeyedSeries)
    return found


labels = st.tuples(st.sampled_from("abc"), st.sampled_from(["v1", "v2", "v3"]))


@given(st.dictionaries(labels, st.floats(0, 1), min_size=1, max_size=6),
       st.dictionaries(labels, st.floats(0, 1), min_size=1, max_size=6))
def test_the_version_holds_exactly_while_the_label_sets_do(
        first: dict[tuple[str, str], float], second: dict[tuple[str, str], float]) -> None:
    """The same label sets in the same order keep the version; another order is a new one
    (safe: a reader re-selects, and one caching positions could not be misled)."""
    store = PluginMetrics("p", 1000)
    before = _commit(store, first)
    after = _commit(store, second)
    assert (after.keys_version == before.keys_version) == (list(first) == list(second))
    assert dict(after) == second  # the values as committed


def test_a_swapped_series_at_the_same_count_is_selected() -> None:
    """A model version rolled over in one commit (v1 gone, v2 new, same number of series):
    the rule must see v2 at once, not keep v1's selection because the count is unchanged."""
    store, snapshots = PluginMetrics("p", 1000), SnapshotCollector()
    snapshots.attach(store)
    harness = Harness(config({"name": "Hot", "metric": LOAD.name, "matchers": ['model="a"'],
                              "op": ">", "fire": 0.5}))
    _commit(store, {("a", "v1"): 0.1, ("b", "v1"): 0.1})
    harness.step(read_families(CollectorRegistry(), snapshots))
    _commit(store, {("a", "v2"): 0.9, ("b", "v1"): 0.1})
    fired = harness.step(read_families(CollectorRegistry(), snapshots))
    assert [(e.kind, e.data["labels"]["version"]) for e in fired] == [("alert.firing", "v2")]


def test_a_live_series_of_a_snapshots_name_never_writes_into_the_snapshot() -> None:
    """The read-back used to add a live sample of the same name and labels to the last
    committed part in place: the plugin's snapshot (and its keys_version) changed under it."""
    from prometheus_client import Gauge  # noqa: PLC0415

    store = PluginMetrics("p", 1000)
    snapshots = SnapshotCollector()
    snapshots.attach(store)
    committed = _commit(store, {("a", "v1"): 0.1})
    live = CollectorRegistry()
    Gauge(LOAD.name, "live twin", ["model", "version"], registry=live).labels("b", "v9").set(7)
    names, parts = read_families(live, snapshots)[LOAD.name]
    assert names == ("model", "version")
    assert dict(committed) == {("a", "v1"): 0.1}  # untouched
    assert [dict(p) for p in parts] == [{("a", "v1"): 0.1}, {("b", "v9"): 7.0}]
