"""Whatever the events and series look like, the engine neither raises nor emits anything a
sink cannot encode, and it holds no more alerts than max_alerts."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import build_config
from agent.model import Event
from plugins.alerts.config import AlertsConfig
from tests.plugins.alerts_helpers import Harness

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
KINDS = st.sampled_from(["gpu.xid", "gpu.lost", "drift.detected", "drift.resolved",
                         "quality.degraded", "quality.recovered", "x.y", "alert.firing", ""])
EVENTS = st.builds(
    lambda kind, attributes, data: Event(kind=kind, source="s", host="h",
                                         attributes=attributes, data=data),
    KINDS, st.dictionaries(st.sampled_from(["gpu", "xid", "model", "model_version", "metric",
                                            "window", "uuid", "zz"]), VALUES, max_size=6),
    st.dictionaries(st.sampled_from(["xid", "value", "description", "top_features",
                                     "evidence", "threshold", "samples"]), VALUES, max_size=6))
NUMBERS = st.floats(allow_nan=True, allow_infinity=True)
FAMILIES = st.dictionaries(
    st.sampled_from(["inferwatch_plugin_up", "inferwatch_gpu_up",
                     "inferwatch_outbox_oldest_age_seconds",
                     "inferwatch_samples_received_total", "inferwatch_samples_rejected_total"]),
    st.tuples(st.just(("plugin", "component")),
              st.lists(st.dictionaries(st.tuples(st.text(max_size=3), st.text(max_size=3)),
                                       NUMBERS, max_size=5), max_size=3)), max_size=5)


def _builtin(max_alerts: int = 10) -> AlertsConfig:
    raw = {"plugins": {"alerts": {"max_alerts": max_alerts}}}
    config = build_config(raw, {"alerts": AlertsConfig}).plugins["alerts"]
    assert isinstance(config, AlertsConfig)
    return config


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENTS, max_size=30))
def test_any_events_through_the_shipped_rules(events: list[Event]) -> None:
    h = Harness(_builtin())
    h.feed(*events)
    h.step({}, advance=7200)
    assert h.engine.count() <= 10
    assert not h.engine.stats.errors
    for event in h.sent:
        msgspec.json.encode(event)
        value = event.data["value"]
        assert value is None or math.isfinite(value)


@settings(max_examples=150, deadline=None)
@given(st.lists(FAMILIES, min_size=1, max_size=6))
def test_any_series_through_the_shipped_rules(steps: list[dict[str, object]]) -> None:
    h = Harness(_builtin())
    for families in steps:
        h.step(families, advance=400)  # type: ignore[arg-type]
    assert h.engine.count() <= 10
    assert not h.engine.stats.errors
    for event in h.sent:
        msgspec.json.encode(event)
