"""An upgrade from the plugin's own outbox (`outbox/mqtt.db`) to the core's durable sink."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent.outbox import Outbox
from tests.helpers import poll, value
from tests.integration.mqtt_helpers import PREFIX
from tests.integration.test_mqtt import _agent

pytestmark = pytest.mark.integration


def test_events_waiting_in_the_old_outbox_are_delivered_after_upgrade(
        write_config, agent_factory, tmp_path: Path, broker, subscriber) -> None:
    old = tmp_path / "state" / "outbox" / "mqtt.db"
    outbox = Outbox(old, max_bytes=1 << 30, max_age=1e9)
    outbox.open()  # what an agent of the old layout left behind: the broker was down
    outbox.put([(f"{PREFIX}/events/test/old", json.dumps({"kind": "test.old", "n": n}).encode())
                for n in range(50)])
    outbox.close()
    agent = _agent(write_config, agent_factory, tmp_path, broker.port)

    def arrived() -> list[dict[str, int]] | None:
        found = [json.loads(p) for p in subscriber.payloads("/events/test/old")]
        return found if len(found) >= 50 else None
    got = poll(arrived, what="the 50 old events")
    assert [e["n"] for e in got] == list(range(50))  # in order
    poll(lambda: value(agent.scrape(), "inferwatch_outbox_depth", sink="mqtt") == 0,
         what="outbox drained")
    assert not old.exists()  # moved, not left to be delivered twice by a downgrade
    new = tmp_path / "state" / "sinks" / "mqtt-outbox.sqlite"
    assert new.exists()
    assert "outbox of an older layout moved" in agent.log()
    assert agent.stop() == 0
    with sqlite3.connect(new) as db:  # acknowledged, so deleted (agent.stopping may wait)
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/old'"
                          ).fetchone()[0] == 0
