"""The alert engine in the real agent: a metric rule fires, shows in GET /api/v1/alerts and
`inferwatch alerts`, survives a restart without a new firing, and resolves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, http_get, poll, run_cli, value

pytestmark = pytest.mark.integration

RULES = """
[plugins.host]
enabled = false
[plugins.eventlog]
enabled = true
[plugins.level]
marker = "{marker}"
interval = "200ms"
[plugins.alerts]
interval = "200ms"
builtin_rules = false
resend_interval = "1h"
[[plugins.alerts.rules]]
name = "TestLevelHigh"
severity = "critical"
metric = "inferwatch_test_level"
op = ">"
fire = 5
clear = 3
summary = "level ${{labels.unit}} is $value"
"""


def _alerts(agent: AgentProcess) -> list[dict[str, Any]]:
    return list(json.loads(http_get(f"{agent.url}/api/v1/alerts"))["alerts"])


def _logged(agent: AgentProcess, kind: str) -> list[dict[str, Any]]:
    """The alert events the eventlog plugin wrote to this run's log."""
    found = []
    for line in agent.log().splitlines():
        if '"event"' in line and kind in line:
            envelope = json.loads(line)["envelope"]
            if envelope["kind"] == kind:
                found.append(envelope)
    return found


def _evaluations(agent: AgentProcess) -> float:
    return value(agent.scrape(), "inferwatch_alerts_evaluations_total") or 0


def test_a_metric_rule_fires_survives_a_restart_and_resolves(
        write_config: ConfigWriter, agent_factory: Any, tmp_path: Path) -> None:
    marker = tmp_path / "level"
    marker.write_text("1")
    config, port = write_config(RULES.format(marker=marker))
    agent = agent_factory(config, port, "-p", "iwtest.level")
    poll(lambda: _evaluations(agent) >= 3, what="evaluations")
    assert _alerts(agent) == []
    marker.write_text("9")
    firing = poll(lambda: _alerts(agent), what="the alert in /api/v1/alerts")
    assert [(a["alertname"], a["state"], a["labels"]["unit"]) for a in firing] == \
        [("TestLevelHigh", "firing", "a")]
    assert firing[0]["annotations"]["summary"] == "level a is 9"
    host = firing[0]["labels"]["host"]
    assert firing[0]["generatorURL"] == \
        f"http://{host}:{port}/api/v1/alerts?alertname=TestLevelHigh"
    poll(lambda: value(agent.scrape(), "inferwatch_alerts", alertname="TestLevelHigh",
                       severity="critical", state="firing") == 1, what="inferwatch_alerts")

    shown = run_cli("alerts", "-c", str(config))
    assert shown.returncode == 1, shown.stderr
    assert "TestLevelHigh" in shown.stdout
    assert "level a is 9" in shown.stdout
    as_json = run_cli("alerts", "-c", str(config), "--json")
    assert json.loads(as_json.stdout)["alerts"][0]["fingerprint"] == firing[0]["fingerprint"]
    poll(lambda: _logged(agent, "alert.firing"), what="alert.firing in the event log")

    assert agent.stop() == 0
    marker.write_text("4")  # between clear and fire: still firing after the restart
    again = agent_factory(config, port, "-p", "iwtest.level")
    poll(lambda: _evaluations(again) >= 10, what="evaluations after the restart")
    resumed = _alerts(again)
    assert [(a["fingerprint"], a["startsAt"], a["state"]) for a in resumed] == \
        [(firing[0]["fingerprint"], firing[0]["startsAt"], "firing")]
    assert _logged(again, "alert.firing") == [], "no new firing after the restart"

    marker.write_text("2")
    resolved = poll(lambda: _logged(again, "alert.resolved"), what="alert.resolved")
    assert resolved[0]["data"]["fingerprint"] == firing[0]["fingerprint"]
    assert resolved[0]["data"]["startsAt"] == firing[0]["startsAt"]
    assert resolved[0]["severity"] == "critical"
    poll(lambda: _alerts(again) == [], what="no alerts")
    done = run_cli("alerts", "-c", str(config))
    assert (done.returncode, done.stdout.strip()) == (0, "no alerts")


def test_alerts_command_without_an_agent_exits_69(write_config: ConfigWriter) -> None:
    config, _port = write_config("")
    done = run_cli("alerts", "-c", str(config))
    assert done.returncode == 69
    assert "inferwatch: error:" in done.stderr


@pytest.mark.timeout(240)
def test_drifted_traffic_becomes_a_firing_alert_naming_the_feature(tmp_path: Path) -> None:
    """Samples through the SDK into the running agent; `amount` drifts; the shipped
    DriftPersisted rule fires on drift.detected with the feature in its description (and
    the fake GPU's XID 79 fires GpuXidCritical)."""
    from tests.integration.live import LiveAgent  # noqa: PLC0415 - starts servers

    live = LiveAgent(tmp_path, extra='[plugins.alerts]\ninterval = "1s"\n')
    try:
        xid = poll(lambda: [a for a in _alerts(live.agent) if a["alertname"] ==
                            "GpuXidCritical"], 60, 0.5, "GpuXidCritical")
        assert xid[0]["labels"]["xid"] == "79"
        assert xid[0]["labels"]["severity"] == "critical"
        # Drift only once the reference is captured (else the reference holds the drift).
        poll(lambda: any(k[0] == "inferwatch_drift_reference_samples"
                         for k in live.agent.scrape()), 60, 0.2, "the drift reference")
        live.traffic.drift = True
        drift = poll(lambda: [a for a in _alerts(live.agent) if a["alertname"] ==
                              "DriftPersisted"], 150, 0.5, "DriftPersisted")
        assert drift[0]["state"] == "firing"
        assert (drift[0]["labels"]["model"], drift[0]["labels"]["model_version"]) == \
            ("fraud", "3")
        description = drift[0]["annotations"]["description"]
        assert description.startswith("Drifted features: amount"), description
    finally:
        live.stop()


def test_a_reload_that_changes_the_rules_keeps_the_firing_alert(
        write_config: ConfigWriter, agent_factory: Any, tmp_path: Path) -> None:
    """SIGHUP with a changed [plugins.alerts] restarts the plugin: its state goes to disk
    and comes back; the alert keeps firing with its start and sends no new firing."""
    import signal  # noqa: PLC0415

    marker = tmp_path / "level"
    marker.write_text("9")
    config, port = write_config(RULES.format(marker=marker))
    agent = agent_factory(config, port, "-p", "iwtest.level")
    firing = poll(lambda: _alerts(agent), what="the alert")
    poll(lambda: _logged(agent, "alert.firing"), what="alert.firing logged")
    config.write_text(config.read_text().replace('summary = "level', 'summary = "Level'))
    before = _evaluations(agent)
    agent.signal(signal.SIGHUP)
    poll(lambda: "configuration reloaded" in agent.log(), what="the reload")
    poll(lambda: _evaluations(agent) >= 5 and _evaluations(agent) != before,
         what="evaluations after the reload")
    after = poll(lambda: _alerts(agent), what="the alert after the reload")
    assert (after[0]["fingerprint"], after[0]["startsAt"]) == \
        (firing[0]["fingerprint"], firing[0]["startsAt"])
    assert after[0]["annotations"]["summary"] == "Level a is 9"
    assert len(_logged(agent, "alert.firing")) == 1
