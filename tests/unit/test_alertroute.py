"""agent.alertroute: alert events read safely whatever their data; routing by kind,
severity, labels and fallback target."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.alertroute import (
    AlertSinkConfig,
    MalformedAlertError,
    alert_of,
    alert_routed,
    fallback_event,
)
from agent.config import build_config
from agent.model import Event
from tests.fixtures.iwtest.alerts import alert_event

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
KEYS = st.sampled_from(["alertname", "fingerprint", "status", "renewal", "labels",
                        "annotations", "startsAt", "endsAt", "generatorURL", "value"])


@given(st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=12))
def test_any_data_is_an_alert_or_a_clear_error(data: dict[str, Any]) -> None:
    event = Event(kind="alert.firing", source="alerts", host="h", data=data)
    try:
        alert = alert_of(event)
    except MalformedAlertError as exc:
        reason = str(exc)
        assert reason, "a reason to log"
        return
    assert alert.alertname
    assert alert.fingerprint
    assert all(isinstance(v, str) and len(v) <= 4096 for v in alert.labels.values())


def test_contract_event_reads_back() -> None:
    alert = alert_of(alert_event("X", labels={"gpu": "0"}))
    assert alert.status == "firing"
    assert alert.labels["gpu"] == "0"
    assert alert.annotations["summary"] == "X on node-a"


def _config(**keys: Any) -> AlertSinkConfig:
    config = build_config({"plugins": {"s": {"enabled": True, **keys}}},
                          {"s": AlertSinkConfig}).plugins["s"]
    assert isinstance(config, AlertSinkConfig)
    return config


@pytest.mark.parametrize(("keys", "event", "taken"), [
    ({}, alert_event("A"), True),
    ({}, Event(kind="drift.detected", source="d", host="h"), False),
    ({"match": ["alert.resolved"]}, alert_event("A"), False),
    ({"min_severity": "critical"}, alert_event("A", severity="warning"), False),
    ({"min_severity": "warning"}, alert_event("A", severity="critical"), True),
    ({"match_labels": {"team": "ml"}}, alert_event("A", labels={"team": "ml"}), True),
    ({"match_labels": {"team": "ml"}}, alert_event("A", labels={"team": "web"}), False),
    ({"match_labels": {"team": "ml"}}, alert_event("A"), False),
    ({"match_labels": {"team": ""}}, alert_event("A"), True),
    ({"match_labels": {"alertname": "Gpu*"}}, alert_event("GpuXid"), True),
    ({}, fallback_event(alert_event("A"), "alertmanager", "s"), True),
    ({}, fallback_event(alert_event("A"), "alertmanager", "other"), False),
])
def test_routing(keys: dict[str, Any], event: Event, taken: bool) -> None:
    assert alert_routed(_config(**keys), "s", event) is taken


def test_fallback_event_keeps_the_alert() -> None:
    original = alert_event("A", severity="critical")
    event = fallback_event(original, "alertmanager", "exec")
    assert event.kind == "alert.fallback"
    assert event.severity == "critical"
    assert event.data == {**original.data, "fallback_from": "alertmanager"}
    assert event.attributes["fallback_to"] == "exec"


def test_check_warns_when_the_fallback_sink_is_not_enabled() -> None:
    from agent.config import config_warnings  # noqa: PLC0415
    from plugins.alertmanager.config import AlertmanagerConfig  # noqa: PLC0415
    from plugins.exec.config import ExecConfig  # noqa: PLC0415

    models = {"alertmanager": AlertmanagerConfig, "exec": ExecConfig}
    raw: dict[str, Any] = {"plugins": {"alertmanager": {"enabled": True, "fallback": "exec"}}}
    assert config_warnings(build_config(raw, models)) == [
        "plugins.alertmanager.fallback: [plugins.exec] is not enabled (alerts this sink "
        "cannot deliver would go nowhere)"]
    raw["plugins"]["exec"] = {"enabled": True, "command": ["/bin/true"]}
    assert config_warnings(build_config(raw, models)) == []


def test_check_refuses_a_fallback_naming_no_installed_plugin() -> None:
    from agent.errors import ConfigError  # noqa: PLC0415
    from plugins.alertmanager.config import AlertmanagerConfig  # noqa: PLC0415
    from plugins.exec.config import ExecConfig  # noqa: PLC0415

    models = {"alertmanager": AlertmanagerConfig, "exec": ExecConfig}
    raw = {"plugins": {"alertmanager": {"enabled": True, "fallback": "exce"}}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, models)
    assert caught.value.problems == [
        "plugins.alertmanager.fallback: no plugin named 'exce' (installed: alertmanager, exec)"]
