"""The documented per-family filter (`events/<family>/#`) works on a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import poll
from tests.integration.mqtt_helpers import Mosquitto, Subscriber

pytestmark = pytest.mark.integration
PREFIX = "inferwatch/v1/node-t"


def test_a_family_wildcard_gets_the_family_and_only_it(write_config: ConfigWriter,
                                                       agent_factory, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    family = Subscriber(broker.port, f"{PREFIX}/events/test/#", client_id="family")
    agents = Subscriber(broker.port, f"{PREFIX}/events/agent/#", client_id="agents")
    try:
        poll(lambda: family.client.is_connected() and agents.client.is_connected(),
             what="subscribers connected")
        config, http = write_config(
            f'[plugins.host]\nenabled = false\n[plugins.emitter]\nmarker = "{tmp_path / "emit"}"\n'
            f'[plugins.mqtt]\nenabled = true\nport = {broker.port}\ninterval = "200ms"\n')
        config.write_text(config.read_text().replace("[agent]\n", '[agent]\nhost_id = "node-t"\n'))
        agent_factory(config, http, "-p", "iwtest.emitter")
        (tmp_path / "emit").write_text("3")
        got = poll(lambda: len(e := family.events()) == 3 and e, what="three test.burst events")
        assert {e["kind"] for e in got} == {"test.burst"}, "the envelope keeps the dotted kind"
        with family._lock:
            assert {t for t, _, _ in family.messages} == {f"{PREFIX}/events/test/burst"}
        started = poll(agents.events, what="agent.started under events/agent/#")
        assert started[0]["kind"] == "agent.started"
    finally:
        family.close()
        agents.close()
        broker.stop()
