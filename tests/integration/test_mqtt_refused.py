"""A broker that refuses publishes (MQTT 5 reason code >= 0x80): nothing is counted delivered."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import AgentProcess, free_port, poll, value
from tests.integration.mqtt_helpers import PREFIX, Mosquitto, Subscriber
from tests.integration.test_mqtt import _agent, _emit

pytestmark = pytest.mark.integration
DENY_EVENTS = f"user agent\ntopic write {PREFIX}/status\n"
ALLOW_ALL = f"user agent\ntopic write {PREFIX}/#\n"


@dataclass
class AclBroker:
    broker: Mosquitto
    port: int  # the listener with a password and the ACL
    acl: Path
    sub: Subscriber  # on the anonymous listener, without ACL

    def allow_all(self) -> None:
        self.acl.write_text(ALLOW_ALL)
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads its ACL file


@pytest.fixture
def acl_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AclBroker]:
    """One anonymous listener (the test's subscriber) and one with a password and an ACL.

    `param`: (ACL text, whether the broker drops the connection after a refusal, as mosquitto
    2.0.11 does with `max_queued_messages 0`; with a bounded queue it does not).
    """
    acl_text, drops = getattr(request, "param", (DENY_EVENTS, False))
    folder = tmp_path / "broker"
    folder.mkdir()
    passwords, acl = folder / "passwords", folder / "acl"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "agent", "s3cret"],
                   check=True, capture_output=True)
    acl.write_text(acl_text)
    plain, guarded = free_port(), free_port()
    broker = Mosquitto(folder, plain, (
        f"per_listener_settings true\nlistener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {guarded} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwords}\nacl_file {acl}\n"
        f"{'' if drops else 'max_queued_messages 100000'}\n")).start()
    sub = Subscriber(plain, f"{PREFIX}/#")
    poll(sub.client.is_connected, what="subscriber")
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    yield AclBroker(broker, guarded, acl, sub)
    sub.close()
    broker.stop()


def _metric(agent: AgentProcess, name: str, **labels: str) -> float:
    return value(agent.scrape(), name, **labels) or 0


def _bursts(sub: Subscriber) -> set[int]:
    return {e["data"]["n"] for e in sub.events() if e["kind"] == "test.burst"}


@pytest.mark.parametrize(("qos", "acl_broker"), [(1, (DENY_EVENTS, False)),
                                                 (2, (DENY_EVENTS, False)),
                                                 (1, (DENY_EVENTS, True))],
                         indirect=["acl_broker"], ids=["qos1", "qos2", "qos1-drops"])
def test_refused_events_stay_in_the_outbox_until_the_broker_takes_them(
        write_config, agent_factory, tmp_path, acl_broker, qos) -> None:
    sub = acl_broker.sub
    agent = _agent(write_config, agent_factory, tmp_path, acl_broker.port,
                   f'username = "agent"\npassword = {{file = "mqtt-password"}}\nqos = {qos}\n')
    poll(lambda: b"online" in sub.payloads("/status"), what="birth (allowed)")
    _emit(tmp_path, 50)
    poll(lambda: _metric(agent, "inferwatch_outbox_depth", sink="mqtt") == 51  # + started
         and _metric(agent, "inferwatch_mqtt_publish_refused_total",
                     reason="not_authorized") >= 2, 20, what="50 events refused, kept")
    assert _metric(agent, "inferwatch_sink_delivered_total", sink="mqtt") == 0
    assert agent.log().count("MQTT broker refused a publish") == 1, "one line per reason"
    assert _bursts(sub) == set()

    acl_broker.allow_all()
    poll(lambda: _bursts(sub) == set(range(50)), 60, 0.1, "every refused event, later")
    poll(lambda: _metric(agent, "inferwatch_outbox_depth", sink="mqtt") == 0, what="drained")
    assert _metric(agent, "inferwatch_sink_delivered_total", sink="mqtt") == 51
    assert agent.proc.poll() is None


# The burst's topic, whether a kind's dots stay in one level or become levels of their own.
ALLOW_BURSTS = (f"{DENY_EVENTS}topic write {PREFIX}/events/test.burst\n"
                f"topic write {PREFIX}/events/test/#\n")


@pytest.mark.parametrize("acl_broker", [(ALLOW_BURSTS, True)], indirect=True, ids=["drops"])
def test_a_refused_topic_does_not_hold_back_the_accepted_ones(
        write_config, agent_factory, tmp_path, acl_broker) -> None:
    sub = acl_broker.sub
    agent = _agent(write_config, agent_factory, tmp_path, acl_broker.port,
                   'username = "agent"\npassword = {file = "mqtt-password"}\nwindow = 10\n')
    _emit(tmp_path, 1000)  # agent.started (denied) sits at the head of the outbox
    poll(lambda: _bursts(sub) == set(range(1000)), 60, 0.1, "the allowed events")
    poll(lambda: _metric(agent, "inferwatch_outbox_depth", sink="mqtt") == 1,
         what="only the refused agent.started left")
    assert _metric(agent, "inferwatch_sink_delivered_total", sink="mqtt") == 1000
