"""The webhook sink in the real agent: a receiver down across a kill -9 loses nothing."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, free_port, poll, value
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.integration
SECRET = b"kill-nine-secret"
SINK = {"plugin": "webhook", "sink": "webhook"}


def _agent(write_config: ConfigWriter, agent_factory, tmp_path: Path, url: str,
           port: int | None = None) -> AgentProcess:
    (tmp_path / "secret").write_bytes(SECRET)
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.emitter]\nmarker = "{tmp_path / "emit"}"\n'
        f'[plugins.webhook]\nenabled = true\nurl = "{url}"\ninterval = "1s"\n'
        f'secret = {{file = "{tmp_path / "secret"}"}}\nmatch = ["test.*"]\n',
        name="agent.toml", port=port)
    return agent_factory(config, http, "-p", "iwtest.emitter")


def _emit(tmp_path: Path, count: int | str) -> None:
    (tmp_path / "emit").write_text(str(count))


def _metric(agent: AgentProcess, name: str, **labels: str) -> float:
    return value(agent.scrape(), name, **{**SINK, **labels}) or 0.0


def test_events_survive_a_kill_9_while_the_receiver_is_down(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    receiver = Receiver(secret=SECRET)  # its port is chosen; nothing listens on it yet
    agent = _agent(write_config, agent_factory, tmp_path, receiver.url)
    _emit(tmp_path, 50)
    poll(lambda: _metric(agent, "inferwatch_sink_queued") == 50, 15, what="50 in the outbox")
    poll(lambda: _metric(agent, "inferwatch_sink_failed_total") >= 1, 15, what="a failed try")
    agent.signal(signal.SIGKILL)
    agent.proc.wait()

    again = _agent(write_config, agent_factory, tmp_path, receiver.url, port=agent.port)
    assert _metric(again, "inferwatch_sink_queued") >= 50  # found in the outbox at start
    _emit(tmp_path, 20)
    poll(lambda: _metric(again, "inferwatch_sink_queued") == 70, 15, what="70 waiting")
    receiver.start()
    try:
        poll(lambda: _metric(again, "inferwatch_sink_queued") == 0, 60, what="drained")
    finally:
        receiver.stop()
    assert receiver.bad_signatures == 0
    assert len({e["id"] for e in receiver.events}) == 70  # no loss
    assert {e["kind"] for e in receiver.events} == {"test.burst"}  # agent.started not routed
    numbers = Counter(e["data"]["n"] for e in receiver.events)
    assert numbers == Counter([*range(50), *range(20)])  # both processes' bursts, whole
    assert _metric(again, "inferwatch_sink_delivered_total") == len(receiver.events)
    assert _metric(again, "inferwatch_sink_dropped_total", reason="full") == 0
    assert again.stop() == 0


def test_a_refusing_receiver_drops_and_counts_and_delivers_the_rest(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    receiver = Receiver(secret=SECRET, port=free_port()).start()
    receiver.answers = [200, 200, 400, 200, 422]
    try:
        agent = _agent(write_config, agent_factory, tmp_path, receiver.url)
        _emit(tmp_path, 10)
        poll(lambda: _metric(agent, "inferwatch_sink_delivered_total") == 8, 15,
             what="8 delivered")
        assert _metric(agent, "inferwatch_sink_dropped_total", reason="rejected") == 2
        assert _metric(agent, "inferwatch_sink_queued") == 0
        assert sorted(e["data"]["n"] for e in receiver.events) == [0, 1, 3, 5, 6, 7, 8, 9]
        assert agent.stop() == 0
    finally:
        receiver.stop()


def test_a_reload_in_the_middle_of_a_burst_loses_nothing(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    """SIGHUP with the webhook's section changed (so the sink restarts) while events arrive,
    the receiver down: every event still reaches it once it is up."""
    receiver = Receiver(secret=SECRET)
    agent = _agent(write_config, agent_factory, tmp_path, receiver.url)
    config = agent.config
    config.write_text(config.read_text().replace('match = ["test.*"]',
                                                 'match = ["test.*", "other.*"]'))
    _emit(tmp_path, "400 hup")
    poll(lambda: "configuration reloaded" in agent.log(), 15, what="the reload")
    assert '"restarted": ["webhook"]' in agent.log()
    poll(lambda: _metric(agent, "inferwatch_sink_queued") == 400, 15, what="400 waiting")
    receiver.start()
    try:
        poll(lambda: len(receiver.events) >= 400, 60, what="all delivered")
    finally:
        receiver.stop()
    assert sorted(e["data"]["n"] for e in receiver.events) == list(range(400))
    assert value(agent.scrape(), "inferwatch_events_dropped_total", reason="stopped") is None
    assert agent.stop() == 0
