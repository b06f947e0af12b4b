"""Every alert sink (a config subclassing AlertSinkConfig) honours the alert contracts
(docs/alerts.md, "What is emitted"): the core's routing keys by their names, durable sink
classes, alert events
as the engine emits them, and malformed ones counted without an exception."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from agent.alertroute import AlertSinkConfig
from agent.components import Sink
from agent.config import build_config
from agent.context import PluginContext
from agent.loader import discover
from agent.metrics import PluginMetrics
from agent.model import Event
from tests.fixtures.iwtest.alerts import alert_event

PLUGINS = discover()
MODELS = PLUGINS.config_models()
ALERT_SINKS = sorted(n for n, m in MODELS.items() if issubclass(m, AlertSinkConfig))
CORE_KEYS = {"match", "min_severity", "durable", "outbox_max_bytes", "outbox_max_age"}
# What each needs to be switched on with otherwise default settings.
ENABLE = {"exec": {"command": ["/bin/true"]}}


def test_the_alert_sinks_are_found() -> None:
    assert {"alertmanager", "exec"} <= set(ALERT_SINKS)


@pytest.mark.parametrize("name", ALERT_SINKS)
def test_routing_keys_carry_the_cores_names(name: str) -> None:
    fields = {f.encode_name for f in msgspec.structs.fields(MODELS[name])}
    assert CORE_KEYS | {"match_labels", "fallback", "fallback_after"} <= fields


def _sinks(name: str, tmp_path: Path) -> list[Sink]:
    raw = {"plugins": {name: {"enabled": True, **ENABLE.get(name, {})}}}
    config = build_config(raw, MODELS).plugins[name]
    ctx = PluginContext(plugin=name, config=config, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics(name, 100), emitter=lambda _: True)
    components = PLUGINS.call(name, "inferwatch_components", config=config, ctx=ctx)
    return [c for c in components if isinstance(c, Sink)]


@pytest.mark.parametrize("name", ALERT_SINKS)
async def test_sinks_are_durable_and_take_contract_events(name: str, tmp_path: Path) -> None:
    (sink,) = _sinks(name, tmp_path)
    assert getattr(type(sink), "durable", False) is True
    await sink.start()
    try:
        malformed = [
            Event(kind="alert.firing", source="alerts", host="h", data={"alertname": 3}),
            Event(kind="alert.resolved", source="alerts", host="h", data={}),
            Event(kind="alert.firing", source="alerts", host="h",
                  data={"alertname": "A", "fingerprint": "f", "status": "firing",
                        "labels": {str(i): "x" for i in range(1000)}}),
        ]
        await sink.deliver(malformed)
        await sink.deliver([alert_event("ContractAlert"),
                            alert_event("ContractAlert", "resolved")])
    finally:
        await sink.stop()
