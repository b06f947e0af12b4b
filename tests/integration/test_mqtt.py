"""Events over MQTT with the real agent and a real mosquitto: outages, kill -9, will, bounds."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, poll, value
from tests.integration.mqtt_helpers import HOST

pytestmark = pytest.mark.integration



def _agent(write_config: ConfigWriter, agent_factory, tmp_path: Path, port: int,
           extra: str = "", *, wait: bool = True) -> AgentProcess:
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.emitter]\nmarker = "{tmp_path / "emit"}"\n'
        f'[plugins.mqtt]\nenabled = true\nport = {port}\ninterval = "200ms"\n{extra}',
        name="agent.toml")
    text = config.read_text().replace("[agent]\n", f'[agent]\nhost_id = "{HOST}"\n'
                                      "event_queue_size = 100000\n", 1)
    config.write_text(text)
    return agent_factory(config, http, "-p", "iwtest.emitter", wait=wait)


def _emit(tmp_path: Path, count: int, big: bool = False) -> None:
    (tmp_path / "emit").write_text(f"{count}{' big' if big else ''}")


def _depth(agent: AgentProcess) -> float:
    return value(agent.scrape(), "inferwatch_outbox_depth", sink="mqtt") or 0


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_birth_events_and_clean_offline(write_config, agent_factory, tmp_path, broker,
                                        subscriber, protocol) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, broker.port,
                   f'protocol = "{protocol}"\n')
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"online"], what="birth")
    _emit(tmp_path, 5)
    events = poll(lambda: len(e := [x for x in subscriber.events()
                                    if x["kind"] == "test.burst"]) == 5 and e, what="5 events")
    assert [e["data"]["n"] for e in events] == [0, 1, 2, 3, 4]
    first = events[0]
    assert first["schema"] == 1
    assert first["host"] == HOST
    assert first["source"] == "emitter"
    assert len(first["id"]) == 26
    assert first["ts"].endswith("Z")
    assert agent.stop() == 0
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"offline"], what="clean offline")


def test_outage_of_10000_events_loses_nothing(write_config, agent_factory, tmp_path, broker,
                                              subscriber) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"online"], what="birth")
    broker.stop()
    _emit(tmp_path, 10_000)
    poll(lambda: _depth(agent) == 10_000, 30, what="10000 events in the outbox")
    assert value(agent.scrape(), "inferwatch_mqtt_connected") == 0
    assert agent.log().count("MQTT broker unreachable") == 1, "one warning, no log spam"
    broker.start()
    poll(lambda: len({e["id"] for e in subscriber.events() if e["kind"] == "test.burst"})
         == 10_000, 60, 0.1, "every event after the outage")
    numbers = [e["data"]["n"] for e in subscriber.events() if e["kind"] == "test.burst"]
    duplicates = len(numbers) - len(set(numbers))
    assert duplicates <= 1000, "duplicates only within the in-flight window"
    first_seen = list(dict.fromkeys(numbers))
    assert first_seen == sorted(first_seen), "in order per kind"
    poll(lambda: _depth(agent) == 0, what="outbox drained")


def test_kill_9_with_pending_events_then_restart(write_config, agent_factory, tmp_path,
                                                 broker, subscriber) -> None:
    broker.stop()
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    _emit(tmp_path, 500)
    poll(lambda: _depth(agent) >= 500, 20, what="500 pending (and agent.started)")
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    broker.start()
    _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: len({e["data"]["n"] for e in subscriber.events()
                      if e["kind"] == "test.burst"}) == 500, 30, 0.1, "all 500 after restart")


def test_last_will_on_kill_9(write_config, agent_factory, tmp_path, broker,
                             subscriber) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"online"], what="birth")
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait()
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"offline"], 15, what="last will")
    _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"online"], what="online again")


def test_full_outbox_drops_oldest_and_counts(write_config, agent_factory, tmp_path, broker,
                                             subscriber) -> None:
    broker.stop()
    agent = _agent(write_config, agent_factory, tmp_path, broker.port,
                   "outbox_max_bytes = 1048576\n")
    _emit(tmp_path, 6000)
    poll(lambda: (value(agent.scrape(), "inferwatch_outbox_dropped_total", sink="mqtt",
                        reason="full") or 0) > 0 and agent.scrape(), 30, what="drops")
    poll(lambda: not (tmp_path / "emit").exists(), what="burst taken by the emitter")
    assert (value(agent.scrape(), "inferwatch_outbox_bytes", sink="mqtt") or 0) <= 1 << 20
    broker.start()
    poll(lambda: any(e["data"]["n"] == 5999 for e in subscriber.events()
                     if e["kind"] == "test.burst"), 30, what="the newest event arrives")
    received = {e["data"]["n"] for e in subscriber.events() if e["kind"] == "test.burst"}
    assert 0 not in received, "the oldest were dropped"
    assert agent.proc.poll() is None


def test_oversized_event_refused_and_corrupt_outbox_replaced(
        write_config, agent_factory, tmp_path, broker, subscriber) -> None:
    outbox = tmp_path / "state" / "outbox" / "mqtt.db"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"this is not a database" * 100)
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    assert "outbox file is corrupt; moved aside" in agent.log()
    assert list(outbox.parent.glob("mqtt.db.corrupt-*"))
    _emit(tmp_path, 1, big=True)
    poll(lambda: value(agent.scrape(), "inferwatch_outbox_dropped_total", sink="mqtt",
                       reason="too_large") == 1, what="2 MiB event refused")
    _emit(tmp_path, 1)
    poll(lambda: [e for e in subscriber.events() if e["kind"] == "test.burst"],
         what="normal events still flow")


def test_topic_prefix_with_wildcards_is_a_config_error(write_config) -> None:
    from tests.helpers import run_cli  # noqa: PLC0415

    for bad in ("inferwatch/+/x", "a//b", "/a", "a/#"):
        config, _ = write_config(f'[plugins.mqtt]\nenabled = true\ntopic_prefix = "{bad}"\n')
        result = run_cli("check", "-c", str(config))
        assert result.returncode == 78
        assert "plugins.mqtt.topic_prefix: must not" in result.stderr


def test_broker_lost_mid_drain_loses_nothing(write_config, agent_factory, tmp_path, broker,
                                             subscriber) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)
    poll(lambda: subscriber.payloads("/status")[-1:] == [b"online"], what="birth")
    _emit(tmp_path, 10_000)
    poll(lambda: (value(agent.scrape(), "inferwatch_sink_delivered_total", sink="mqtt") or 0)
         >= 1000, 30, 0.01, what="draining")
    broker.stop()  # the connection closes mid-publish
    broker.start()
    poll(lambda: len({e["data"]["n"] for e in subscriber.events()
                      if e["kind"] == "test.burst"}) == 10_000, 60, 0.1, "every event")
    assert agent.proc.poll() is None
