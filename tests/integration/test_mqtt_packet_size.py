"""A broker with a maximum packet size below the agent's max_payload_bytes: one event too
big for it must not hold back every event behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.mqtt.publisher import packet_size
from tests.helpers import free_port, poll, value
from tests.integration.mqtt_helpers import PREFIX, Mosquitto, Subscriber
from tests.integration.test_mqtt import _agent

pytestmark = pytest.mark.integration


def test_an_event_over_the_brokers_packet_size_is_dropped_counted_and_the_rest_flow(
        write_config, agent_factory, tmp_path: Path) -> None:
    """Before: mosquitto closed the connection on each try, the agent reconnected about once
    a second ("unreachable"), and none of the later events was delivered."""
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port, f"listener {port} 127.0.0.1\n"
                       "allow_anonymous true\nmax_packet_size 1000000\n").start()
    sub = Subscriber(port, f"{PREFIX}/#")
    poll(sub.client.is_connected, what="subscriber")
    try:
        agent = _agent(write_config, agent_factory, tmp_path, port,
                       "max_payload_bytes = 4194304\n")
        (tmp_path / "emit").write_text("1 big")  # 2 MiB: under the agent's limit, not the broker's
        poll(lambda: not (tmp_path / "emit").exists(), 10, what="the big event emitted")
        (tmp_path / "emit").write_text("5")
        bursts = poll(lambda: len(b := [e["data"]["n"] for e in sub.events()
                                        if e["kind"] == "test.burst"]) == 5 and b, 20, 0.1,
                      "the five events after the big one")
        assert bursts == [1, 2, 3, 4, 5]
        metrics = poll(lambda: (m := agent.scrape()) and value(
            m, "inferwatch_outbox_depth", sink="mqtt") == 0 and m, 10, 0.1, "outbox empty")
        assert value(metrics, "inferwatch_outbox_dropped_total", sink="mqtt",
                     reason="too_large") == 1
        assert value(metrics, "inferwatch_mqtt_connects_total") == 1
    finally:
        sub.close()
        broker.stop()


def test_packet_size_counts_the_remaining_length_bytes() -> None:
    assert packet_size("t", b"", 1) == 1 + 1 + (2 + 1 + 2 + 1)
    assert packet_size("t", b"x" * 121, 1) == 1 + 1 + 127
    assert packet_size("t", b"x" * 122, 1) == 1 + 2 + 128
    assert packet_size("t", b"x" * 122, 0) == 1 + 1 + 126
