"""Snapshot metrics: whole replacement (no stale series), the series budget, valid names."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from agent.metrics import (
    Accumulator,
    MetricDef,
    PluginMetrics,
    SnapshotCollector,
    counter,
    gauge,
)
from tests.helpers import parse_metrics, value

DISK = gauge("inferwatch_test_disk_bytes", "Disk size.", "device")
READS = counter("inferwatch_test_reads_total", "Reads.", "device")


def _render(*stores: PluginMetrics) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector()
    for store in stores:
        collector.attach(store)
    registry.register(collector)
    return generate_latest(registry)


def test_vanished_device_leaves_no_series() -> None:
    store = PluginMetrics("p", 100)
    acc = Accumulator()
    acc.add(DISK, 10, device="sda")
    acc.add(DISK, 20, device="sdb")
    store.commit("disk", acc)
    later = Accumulator()
    later.add(DISK, 11, device="sda")
    store.commit("disk", later)
    metrics = parse_metrics(_render(store).decode())
    assert value(metrics, "inferwatch_test_disk_bytes", device="sda") == 11
    assert value(metrics, "inferwatch_test_disk_bytes", device="sdb") is None


def test_series_budget_refuses_and_counts() -> None:
    store = PluginMetrics("p", 5)
    first = Accumulator()
    for i in range(3):
        first.add(DISK, i, device=f"a{i}")
    assert store.commit("one", first) == 0
    second = Accumulator()
    for i in range(4):
        second.add(READS, i, device=f"b{i}")
    assert store.commit("two", second) == 2
    assert store.refused_total == 2
    assert len(parse_metrics(_render(store).decode())) == 5


def test_counter_and_promtool() -> None:
    store = PluginMetrics("p", 100)
    acc = Accumulator()
    acc.add(READS, 3, device='we"ird\\dev\nice')
    store.commit("c", acc)
    text = _render(store)
    assert b'inferwatch_test_reads_total{device="we\\"ird\\\\dev\\nice"} 3.0' in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           check=False)
    assert check.returncode == 0, check.stderr


def test_same_name_from_two_plugins_goes_to_first() -> None:
    a, b = PluginMetrics("a", 10), PluginMetrics("b", 10)
    for store, v in ((a, 1), (b, 2)):
        acc = Accumulator()
        acc.add(DISK, v, device="x")
        store.commit("c", acc)
    other = gauge("inferwatch_test_disk_bytes", "Different labels.", "mount")
    acc = Accumulator()
    acc.add(other, 9, mount="/")
    b.commit("d", acc)
    metrics = parse_metrics(_render(a, b).decode())
    assert value(metrics, "inferwatch_test_disk_bytes", device="x") == 2  # same def: merged
    assert value(metrics, "inferwatch_test_disk_bytes", mount="/") is None  # conflicting def


@pytest.mark.parametrize(("name", "kind", "labels"), [
    ("node_cpu", "gauge", ()),
    ("inferwatch_x_total", "gauge", ()),
    ("inferwatch_x", "counter", ()),
    ("inferwatch_x", "gauge", ("Bad-Label",)),
])
def test_metric_definitions_are_checked(name: str, kind: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"inferwatch_|_total|label"):
        (counter if kind == "counter" else gauge)(name, "h", *labels)


def test_wrong_labels_rejected() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        Accumulator().add(DISK, 1, mount="/")


def test_cached_exposition_follows_every_change() -> None:
    from prometheus_client import Gauge  # noqa: PLC0415

    from agent.exposition import Exposition  # noqa: PLC0415

    live, collector = CollectorRegistry(), SnapshotCollector()
    live_gauge = Gauge("inferwatch_test_live", "Live.", registry=live)
    store = PluginMetrics("p", 100)
    collector.attach(store)
    exposition = Exposition(live, collector)
    for n in range(3):
        acc = Accumulator()
        acc.add(DISK, n, device="sda")
        store.commit("disk", acc)
        live_gauge.set(n * 10)
        text, _ = exposition.render("")
        metrics = parse_metrics(text.decode())
        assert value(metrics, "inferwatch_test_disk_bytes", device="sda") == n
        assert value(metrics, "inferwatch_test_live") == n * 10
    store.drop("disk")
    assert b"inferwatch_test_disk_bytes{" not in exposition.render("")[0]
    body, content_type = exposition.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.count(b"# EOF") == 1
    assert body.endswith(b"# EOF\n")


_label_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_values = st.one_of(st.floats(allow_nan=False), st.just(float("inf")), st.integers(-2**60, 2**60))
_metric = st.builds(
    lambda kind, i, labels, help_: MetricDef(
        f"inferwatch_p{i}_x" + ("_total" if kind == "counter" else ""), help_, kind,
        tuple(labels)),
    st.sampled_from(["gauge", "counter"]), st.integers(0, 5),
    st.lists(st.sampled_from(["zeta", "alpha", "device", "mode"]), unique=True, max_size=3),
    _label_text,
)


@given(st.lists(st.tuples(_metric, st.lists(st.tuples(st.lists(_label_text, min_size=3,
                                                               max_size=3), _values),
                                            min_size=1, max_size=4)),
                max_size=5, unique_by=lambda t: t[0].name))
def test_fast_render_is_byte_identical_to_prometheus_client(families) -> None:
    from prometheus_client.openmetrics.exposition import (  # noqa: PLC0415
        generate_latest as openmetrics_latest,
    )

    from agent.exposition import render  # noqa: PLC0415

    store = PluginMetrics("p", 10_000)
    acc = Accumulator()
    for metric, samples in families:
        for labels, number in samples:
            acc.add(metric, number, **dict(zip(metric.labels, labels, strict=False)))
    store.commit("c", acc)
    collector = SnapshotCollector()
    collector.attach(store)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ours = collector.families().values()
    assert render(ours, openmetrics=False) == generate_latest(registry)
    assert render(ours, openmetrics=True) + b"# EOF\n" == openmetrics_latest(registry)
