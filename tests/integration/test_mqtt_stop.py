"""A stop or a reload with events still queued for the sink: every one reaches the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import AgentProcess, poll
from tests.integration.mqtt_helpers import Mosquitto, Subscriber
from tests.integration.test_mqtt import _agent

pytestmark = pytest.mark.integration



def _bursts(sub: Subscriber) -> set[int]:
    return {e["data"]["n"] for e in sub.events() if e["kind"] == "test.burst"}


def _dropped(agent: AgentProcess) -> float:
    metrics = agent.scrape()
    return sum(v for (name, _), v in metrics.items()
               if name == "inferwatch_events_dropped_total")


def test_burst_then_sigterm_at_once_then_restart_delivers_all(
        write_config, agent_factory, tmp_path: Path, broker: Mosquitto,
        subscriber: Subscriber) -> None:
    broker.stop()  # everything has to be in the outbox when the agent exits
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    (tmp_path / "emit").write_text("10000 term")  # SIGTERM right after the burst
    assert agent.proc.wait(30) == 0
    assert "events dropped at stop" not in agent.log()
    broker.start()
    _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: _bursts(subscriber) == set(range(10_000)), 30, 0.1, "all 10,000 after restart")


def test_burst_then_reload_of_the_mqtt_plugin_delivers_all(
        write_config, agent_factory, tmp_path: Path, broker: Mosquitto,
        subscriber: Subscriber) -> None:
    broker.stop()
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    config = agent.config
    config.write_text(config.read_text().replace('interval = "200ms"', 'interval = "300ms"'))
    (tmp_path / "emit").write_text("10000 hup")  # the reload restarts the mqtt plugin
    poll(lambda: "configuration reloaded" in agent.log(), 30, what="reload done")
    assert '"restarted": ["mqtt"]' in agent.log()
    assert _dropped(agent) == 0
    broker.start()
    poll(lambda: _bursts(subscriber) == set(range(10_000)), 30, 0.1, "all 10,000 after reload")
    assert agent.proc.poll() is None
    assert agent.stop() == 0


def test_sigterm_during_a_reload_of_the_mqtt_plugin_then_restart_delivers_all(
        write_config, agent_factory, tmp_path: Path, broker: Mosquitto,
        subscriber: Subscriber) -> None:
    """The stop waits for the reload in progress: before, both stopped the same sink (the
    second one dropped the queue the reload kept for its successor) and the successor,
    started after the stop had begun, was never stopped."""
    broker.stop()
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    config = agent.config
    config.write_text(config.read_text().replace('interval = "200ms"', 'interval = "300ms"'))
    (tmp_path / "emit").write_text("10000 hup term")  # SIGTERM while the reload runs
    assert agent.proc.wait(30) == 0
    assert "events dropped at stop" not in agent.log()
    broker.start()
    _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: _bursts(subscriber) == set(range(10_000)), 30, 0.1, "all 10,000 after restart")
