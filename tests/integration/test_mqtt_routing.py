"""[plugins.mqtt] as a sink like the others: `match` routes what reaches the broker, and the
generic sink series are exported beside its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import free_port, poll, value
from tests.integration.mqtt_helpers import Mosquitto, Subscriber

pytestmark = pytest.mark.integration
PREFIX = "inferwatch/v1/node-r"


def test_only_the_kinds_mqtt_matches_are_published(write_config: ConfigWriter, agent_factory,
                                                   tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    everything = Subscriber(broker.port, f"{PREFIX}/events/#", client_id="all")
    try:
        poll(everything.client.is_connected, what="subscriber connected")
        config, http = write_config(
            f'[plugins.host]\nenabled = false\n[plugins.emitter]\nmarker = "{tmp_path / "emit"}"\n'
            f'[plugins.mqtt]\nenabled = true\nport = {broker.port}\ninterval = "200ms"\n'
            f'match = ["agent.*"]\n')
        config.write_text(config.read_text().replace("[agent]\n", '[agent]\nhost_id = "node-r"\n'))
        agent = agent_factory(config, http, "-p", "iwtest.emitter")
        poll(lambda: [e["kind"] for e in everything.events()] == ["agent.started"],
             what="agent.started published")
        (tmp_path / "emit").write_text("25")
        poll(lambda: value(agent.scrape(), "inferwatch_events_emitted_total",
                           kind="test.burst") == 25, what="the burst emitted")
        assert value(agent.scrape(), "inferwatch_outbox_depth", sink="mqtt") == 0
        # agent.stopping goes into the outbox after the burst (the publisher stops first);
        # the next start publishes it, then its own agent.started.
        assert agent.stop() == 0
        agent_factory(config, http, "-p", "iwtest.emitter")
        kinds = poll(lambda: len(e := everything.events()) >= 3 and [x["kind"] for x in e],
                     what="agent.stopping and the second agent.started")
        assert kinds == ["agent.started", "agent.stopping", "agent.started"]  # no test.burst
    finally:
        everything.close()
        broker.stop()


def test_mqtt_reports_the_series_every_durable_sink_has(write_config: ConfigWriter,
                                                        agent_factory, tmp_path: Path) -> None:
    """Broker down: the generic sink series agree with the MQTT outbox's own."""
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.emitter]\nmarker = "{tmp_path / "emit"}"\n'
        f'[plugins.mqtt]\nenabled = true\nport = {free_port()}\ninterval = "200ms"\n')
    agent = agent_factory(config, http, "-p", "iwtest.emitter")
    (tmp_path / "emit").write_text("30")
    sink = {"plugin": "mqtt", "sink": "outbox"}

    def waiting() -> float | None:
        return value(agent.scrape(), "inferwatch_sink_queued", **sink)

    poll(lambda: waiting() == 31, what="30 events and agent.started queued")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_outbox_depth", sink="mqtt") == 31
    assert (value(metrics, "inferwatch_sink_failed_total", **sink) or 0) >= 1
    assert (value(metrics, "inferwatch_sink_oldest_age_seconds", **sink) or 0) > 0
    assert value(metrics, "inferwatch_sink_dropped_total", **sink, reason="full") == 0
    assert agent.stop() == 0
