"""Selections cached across evaluations (plugins/alerts/series.py) decide exactly what a
selection made from scratch at every evaluation decides, whatever the collectors recommit
between evaluations; and the engine keeps no part of the registry past an evaluation."""

from __future__ import annotations

import math
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from agent.metrics import Accumulator, KeyedSeries, MetricDef, PluginMetrics, SnapshotCollector
from agent.metrics import counter as counter_def
from agent.metrics import gauge as gauge_def
from agent.readback import Families, read_families
from plugins.alerts.series import Key, Signatures
from tests.plugins.alerts_helpers import Harness, config

TEMP = "inferwatch_gpu_temperature_celsius"
LOAD = gauge_def("inferwatch_test_churn_load", "test", "gpu", "model")
SIZE = gauge_def("inferwatch_test_churn_size", "test", "gpu")
DONE = counter_def("inferwatch_test_churn_done_total", "test", "gpu", "model")
METRICS = (LOAD, SIZE, DONE)
COMPONENTS = ("c0", "c1", "c2")
VALUES = st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 6.0, 9.0, 10.0, 11.0, 50.0,
                          math.nan])
SERIES = st.lists(st.tuples(st.sampled_from(METRICS), st.sampled_from("0123"),
                            st.sampled_from("abc"), VALUES), max_size=10)
# keep: the component did not commit since; revalue: same series, new values; reshape:
# any series (added, gone, reordered); drop: the component went away.
ACTIONS = st.one_of(st.just(("keep", None)), st.tuples(st.just("revalue"), st.lists(VALUES)),
                    st.tuples(st.just("reshape"), SERIES), st.just(("drop", None)))
MATCHERS = ['gpu="0"', 'gpu=~"[01]"', 'model!="b"', 'model=~"a|c"', 'zone=""', 'zone="x"',
            'gpu!~"2"']


class _FromScratch(Signatures):
    """The reference: a new token at every look, so every rule selects again each time."""

    def of(self, metric: str, parts: list[dict[Key, float]]) -> object:
        return object()


@st.composite
def _rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        fire = draw(st.sampled_from([1.0, 5.0, 10.0]))
        gap = 0.0 if op in ("==", "!=") else draw(st.sampled_from([0.0, 1.0, 4.0]))
        rule: dict[str, Any] = {
            "name": f"R{i}", "metric": draw(st.sampled_from([LOAD.name, DONE.name])),
            "matchers": draw(st.lists(st.sampled_from(MATCHERS), max_size=2)), "op": op,
            "fire": fire, "clear": fire - gap if op.startswith(">") else fire + gap}
        function = draw(st.sampled_from(["value", "increase", "rate"]))
        if function != "value":
            rule |= {"function": function, "range": draw(st.sampled_from(["30s", "45s"]))}
        if draw(st.booleans()):
            rule["divide_by"] = SIZE.name
        for key, choices in (("for", ["15s", "30s"]), ("keep_firing_for", ["15s"]),
                             ("debounce", ["2/3"])):
            if draw(st.booleans()):
                rule[key] = draw(st.sampled_from(choices))
        out.append(rule)
    return out


class _Collectors:
    """Components committing to a real PluginMetrics; read back as the agent does."""

    def __init__(self) -> None:
        self.store, self.snapshots = PluginMetrics("p", 10_000), SnapshotCollector()
        self.snapshots.attach(self.store)
        self.last: dict[str, list[tuple[MetricDef, tuple[str, str] | tuple[str], float]]] = {}

    def act(self, component: str, action: tuple[str, Any]) -> None:
        kind, arg = action
        if kind == "drop":
            self.store.drop(component)
            self.last.pop(component, None)
        elif kind == "revalue" and component in self.last:
            series = self.last[component]
            values = arg or [1.0]
            self._commit(component, [(m, key, values[i % len(values)])
                                     for i, (m, key, _) in enumerate(series)])
        elif kind == "reshape":
            self._commit(component, [(m, (gpu, model) if m.labels[1:] else (gpu,), v)
                                     for m, gpu, model, v in arg])

    def _commit(self, component: str,
                series: list[tuple[MetricDef, tuple[str, str] | tuple[str], float]]) -> None:
        acc = Accumulator()
        for metric, key, value in series:
            acc.put(metric, key, value)
        self.store.commit(component, acc)
        self.last[component] = series

    def read(self) -> Families:
        return read_families(CollectorRegistry(), self.snapshots)


def _copied(families: Families) -> Families:
    """Plain dicts with new key tuples (`(*k,)`: tuple(k) would be k itself): nothing an
    engine could know from the last read."""
    return {name: (names, [{(*k,): v for k, v in part.items()} for part in parts])
            for name, (names, parts) in families.items()}


def _seen(h: Harness, sent: list[Any]) -> tuple[str, ...]:
    return (repr([(e.kind, e.data, e.attributes) for e in sent]), repr(h.engine.snapshot()),
            repr(sorted(h.engine.states().items())), repr(h.engine.stats.overflow),
            repr(h.engine.stats.errors))


@settings(max_examples=300, deadline=None)
@given(_rules(), st.lists(st.lists(ACTIONS, min_size=3, max_size=3), min_size=1,
                          max_size=14),
       st.sampled_from([2, 1000]), st.booleans())
def test_cached_selections_decide_as_selecting_from_scratch(
        rules: list[dict[str, Any]], steps: list[list[tuple[str, Any]]], max_alerts: int,
        plain: bool) -> None:
    """Every alert event, every alert's state and value, the cap's refusals: the same as
    an engine that selects every rule's series again at each evaluation from plain copies.
    `plain`: the cached engine reads plain dicts (hashed), not the commits' keys_version."""
    settings_ = config(*rules, max_alerts=max_alerts, unknown_metrics="warn")
    cached, reference = Harness(settings_), Harness(settings_)
    reference.engine._signatures = _FromScratch()  # the reference's one change
    collectors, copies = _Collectors(), {}
    for actions in steps:
        for component, action in zip(COMPONENTS, actions, strict=True):
            collectors.act(component, action)
        families = collectors.read()
        if plain:  # a part not recommitted is the very same dict, as the engine got it last
            families = {name: (names, [copies.setdefault(id(part), (part, dict(part)))[1]
                                       for part in parts])
                        for name, (names, parts) in families.items()}
        got = cached.step(families)
        expected = reference.step(_copied(families))
        assert _seen(cached, got) == _seen(reference, expected)


class _Part(dict[Key, float]):
    """A plain part that can be watched."""


class _KeyedPart(KeyedSeries):
    """A committed part that can be watched."""

    __slots__ = ("__weakref__",)


def _part(kind: str, version: int, values: dict[Key, float]) -> dict[Key, float]:
    if kind == "plain":
        return _Part(values)
    part = _KeyedPart(values)
    part.keys_digest, part.keys_version = 0, version
    return part


@pytest.mark.parametrize("kind", ["plain", "keyed"])
def test_the_engine_keeps_no_part_past_an_evaluation(kind: str) -> None:
    """A part the collectors replaced is freed when they replace it, not kept alive until
    the next evaluation (which then paid for freeing a whole generation of series)."""
    h = Harness(config({"name": "Hot", "metric": TEMP, "fire": 90, "clear": 80}))
    parts = [_part(kind, 1, {("0",): 95.0, ("1",): 20.0}), _part(kind, 2, {("2",): 95.0})]
    watched = [weakref.ref(p) for p in parts]
    fired = h.step({TEMP: (("gpu",), parts)})
    del parts
    assert [ref() for ref in watched] == [None, None]
    assert [e.data["labels"]["gpu"] for e in fired] == ["0", "2"]
    again = [_part(kind, 1, {("0",): 95.0, ("1",): 20.0}), _part(kind, 2, {("2",): 85.0})]
    assert h.step({TEMP: (("gpu",), again)}) == []  # the same series: still firing
    assert sorted(a["value"] for a in h.engine.snapshot()) == [85.0, 95.0]
