"""The real agent over its own CPU budget: a plugin that burns CPU on purpose is slowed down,
a cheap one is left alone, and both run at their configured pace once the burning stops."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, poll, value

pytestmark = pytest.mark.integration
BASE = 0.5


def _interval(agent: AgentProcess, plugin: str) -> float | None:
    return value(agent.scrape(), "inferwatch_collector_interval_seconds",
                 plugin=plugin, component="ticker")


def _events(agent: AgentProcess, kind: str) -> list[dict[str, object]]:
    return [json.loads(line)["envelope"] for line in agent.log().splitlines()
            if f'"{kind}"' in line and '"envelope"' in line]


def test_over_budget_the_costliest_collector_slows_and_recovers(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "burn"
    marker.write_text("")
    config, port = write_config(
        f'[plugins.burner]\ninterval = "{BASE}s"\ntimeout = "{BASE}s"\nmarker = "{marker}"\n'
        f'[plugins.ticker]\ninterval = "{BASE}s"\n'
        '[plugins.eventlog]\nenabled = true\n[plugins.host]\nenabled = false\n',
        # 100 ms of CPU every 0.5 s is 20% of a CPU; the budget is 8%.
        name="agent.toml")
    config.write_text(config.read_text().replace(
        "[agent]\n", '[agent]\ncpu_percent = 8\nbudget_period = "0.5s"\n'))
    agent = agent_factory(config, port, "-p", "iwtest.burner", "-p", "iwtest.common:ticker")
    poll(lambda: (_interval(agent, "burner") or 0) >= 4 * BASE, timeout=30, interval=0.5,
         what="the burner slowed down twice")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_agent_budget_exceeded", resource="cpu") == 1
    assert _interval(agent, "ticker") == BASE  # it costs nothing: never slowed
    assert (value(metrics, "inferwatch_plugin_cpu_seconds_total", plugin="burner",
                  component="ticker") or 0) > 0.2
    exceeded = poll(lambda: _events(agent, "agent.budget_exceeded"), interval=0.5,
                    what="agent.budget_exceeded")
    assert exceeded[0]["data"]["plugin"] == "burner"  # type: ignore[index]
    assert "agent over its budget; slowing its costliest collector" in agent.log()

    marker.unlink()
    poll(lambda: _interval(agent, "burner") == BASE, timeout=40, interval=0.5,
         what="the burner's interval restored")
    poll(lambda: _events(agent, "agent.budget_restored"), interval=0.5, what="restored event")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_agent_budget_exceeded", resource="cpu") == 0
    assert "agent back under its budget" in agent.log()
    assert agent.stop() == 0


def test_a_reload_that_lifts_the_budget_restores_the_intervals(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The controller follows `[agent]` on SIGHUP: before, it kept the budget it started with."""
    marker = tmp_path / "burn"
    marker.write_text("")
    config, port = write_config(
        f'[plugins.burner]\ninterval = "{BASE}s"\ntimeout = "{BASE}s"\nmarker = "{marker}"\n'
        '[plugins.host]\nenabled = false\n', name="agent.toml")
    budgeted = config.read_text()
    config.write_text(budgeted.replace("[agent]\n", '[agent]\ncpu_percent = 8\n'
                                                    'budget_period = "0.5s"\n'))
    agent = agent_factory(config, port, "-p", "iwtest.burner")
    poll(lambda: (_interval(agent, "burner") or 0) >= 2 * BASE, timeout=30, interval=0.5,
         what="the burner slowed down")
    config.write_text(budgeted.replace("[agent]\n", '[agent]\nbudget_period = "0.5s"\n'))
    agent.signal(signal.SIGHUP)  # the burner still burns: only the lifted budget restores it
    poll(lambda: _interval(agent, "burner") == BASE, timeout=40, interval=0.5,
         what="the burner's interval restored once the budget is lifted")
    poll(lambda: "agent back under its budget" in agent.log(), what="the restore logged")
    lifted = [line for line in agent.log().splitlines() if "cpu_budget_percent" in line
              and "agent back under its budget" in line]
    assert '"cpu_budget_percent": 0.0' in lifted[-1]
    assert value(agent.scrape(), "inferwatch_agent_budget_exceeded", resource="cpu") == 0
    assert agent.stop() == 0
