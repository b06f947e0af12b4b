"""Alerts on `<prefix>/alerts/<alertname>/<fingerprint>`: retained while firing, cleared on
resolve; seen by real subscribers of a real mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, poll
from tests.integration.mqtt_helpers import HOST, PREFIX, Subscriber

pytestmark = pytest.mark.integration


def _agent(write_config: ConfigWriter, agent_factory, tmp_path: Path,
           port: int) -> AgentProcess:
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.alerter]\nmarker = "{tmp_path / "alert"}"\n'
        f'[plugins.mqtt]\nenabled = true\nport = {port}\ninterval = "200ms"\n')
    config.write_text(config.read_text().replace("[agent]\n", f'[agent]\nhost_id = "{HOST}"\n'))
    return agent_factory(config, http, "-p", "iwtest.alerter")


def _alert(tmp_path: Path, *specs: dict[str, object]) -> None:
    poll(lambda: not (tmp_path / "alert").exists(), what="the last alerts taken")
    (tmp_path / "alert").write_text("".join(json.dumps(s) + "\n" for s in specs))


def _late(port: int, name: str) -> Subscriber:
    """A subscriber that connects now: it gets only what is retained."""
    sub = Subscriber(port, f"{PREFIX}/alerts/#", client_id=name)
    poll(sub.client.is_connected, what="late subscriber connected")
    return sub


def _retained(sub: Subscriber) -> dict[str, bytes]:
    with sub._lock:
        return {t: p for t, p, retain in sub.messages if retain}


GPU0 = {"alertname": "GpuXid", "labels": {"gpu": "0"}, "severity": "critical"}
GPU1 = {"alertname": "GpuXid", "labels": {"gpu": "1"}, "severity": "critical"}


def test_alert_retained_while_firing_cleared_on_resolve(write_config, agent_factory, tmp_path,
                                                        broker, subscriber) -> None:
    _agent(write_config, agent_factory, tmp_path, broker.port)
    _alert(tmp_path, GPU0, GPU1)
    poll(lambda: len(subscriber.payloads("")) >= 4, what="events and alerts")
    late = _late(broker.port, "late-1")
    found = poll(lambda: len(r := _retained(late)) == 2 and r, what="both retained alerts")
    late.close()
    topics = sorted(found)
    assert all(t.startswith(f"{PREFIX}/alerts/GpuXid/") for t in topics)
    envelopes = [json.loads(found[t]) for t in topics]
    assert {e["data"]["labels"]["gpu"] for e in envelopes} == {"0", "1"}
    assert all(t.endswith("/" + e["data"]["fingerprint"]) for t, e in zip(topics, envelopes,
                                                                          strict=True))
    assert all(e["kind"] == "alert.firing" for e in envelopes)

    _alert(tmp_path, {**GPU0, "status": "resolved"})
    gpu0 = next(t for t, e in zip(topics, envelopes, strict=True) if e["data"]["labels"]["gpu"]
                == "0")
    poll(lambda: subscriber.payloads(gpu0)[-1:] == [b""], what="the clear seen live")
    late = _late(broker.port, "late-2")
    poll(lambda: list(_retained(late)) == [t for t in topics if t != gpu0],
         what="only the alert still firing retained")
    late.close()
    resolves = [e for e in subscriber.events() if e["kind"] == "alert.resolved"]
    assert len(resolves) == 1, "the resolve envelope stays on the events topic"
