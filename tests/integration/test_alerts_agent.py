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
    assert value(agent.scrape(), "inferwatch_alerts", alertname="TestLevelHigh",
                 severity="critical", state="firing") == 1

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
