"""The Alertmanager sink against a real Alertmanager, with the real agent as a subprocess."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, free_port, poll, value
from tests.integration.alertmanager_helpers import Alertmanager, Receiver

pytestmark = pytest.mark.integration
HOST = "node-a"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def am(tmp_path: Path, receiver: Receiver) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path / "am", receiver.port).start()
    yield server
    server.stop()


def _agent(write_config: ConfigWriter, agent_factory, tmp_path: Path, urls: list[str],
           extra: str = "", port: int | None = None) -> AgentProcess:
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.alerter]\nmarker = "{tmp_path / "alert"}"\n'
        f'[plugins.alertmanager]\nenabled = true\nurls = {json.dumps(urls)}\n'
        f'interval = "1s"\n{extra}', port=port)
    config.write_text(config.read_text().replace("[agent]\n", f'[agent]\nhost_id = "{HOST}"\n'))
    return agent_factory(config, http, "-p", "iwtest.alerter")


def _alert(tmp_path: Path, *specs: dict[str, object]) -> None:
    poll(lambda: not (tmp_path / "alert").exists(), what="the last alerts taken")
    (tmp_path / "alert").write_text("".join(json.dumps(s) + "\n" for s in specs))


def _names(am: Alertmanager) -> list[str]:
    return sorted(a["labels"]["alertname"] for a in am.alerts())


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


STARTS = "2026-01-01T00:00:00.000Z"
DISK = {"alertname": "DiskNearlyFull", "labels": {"mountpoint": "/data"},
        "severity": "critical", "starts_at": STARTS}


def test_fires_then_resolves(write_config, agent_factory, tmp_path, am, receiver) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, [am.url])
    _alert(tmp_path, DISK)
    (alert,) = poll(am.alerts, what="the alert in Alertmanager")
    labels = alert["labels"]
    assert labels == {"alertname": "DiskNearlyFull", "mountpoint": "/data",
                      "severity": "critical", "host": HOST}
    assert alert["startsAt"].startswith("2026-01-01T00:00:00")
    assert alert["annotations"]["summary"] == f"DiskNearlyFull on {HOST}"
    assert alert["generatorURL"] == f"http://{HOST}:9879/api/v1/alerts"
    ends_in = _ts(alert["endsAt"]) - dt.datetime.now(dt.UTC).timestamp()
    assert 170 < ends_in <= 181, "finite endsAt: 3 x the 60 s resend interval"
    poll(lambda: receiver.alerts("firing"), what="the firing notification")
    _alert(tmp_path, {**DISK, "status": "resolved"})
    poll(lambda: not am.alerts(), what="the alert resolved in Alertmanager")
    (resolved,) = poll(lambda: receiver.alerts("resolved"), what="the resolve notification")
    assert resolved["labels"]["mountpoint"] == "/data"
    poll(lambda: value(agent.scrape(), "inferwatch_alertmanager_alerts", state="resolved") == 0,
         what="the resolved episode forgotten once delivered")
    assert value(agent.scrape(), "inferwatch_alertmanager_up", url=am.url) == 1


def test_restart_while_firing_neither_repages_nor_loses_the_resolve(
        write_config, agent_factory, tmp_path, am, receiver) -> None:
    port = free_port()
    agent = _agent(write_config, agent_factory, tmp_path, [am.url], port=port)
    _alert(tmp_path, DISK)
    poll(lambda: receiver.alerts("firing"), what="the firing notification")
    received = am.received("firing")
    agent.signal(signal.SIGKILL)
    agent.proc.wait()
    agent = _agent(write_config, agent_factory, tmp_path, [am.url], port=port)
    poll(lambda: am.received("firing") > received, what="the held alert renewed after restart")
    _alert(tmp_path, {**DISK, "status": "resolved"})
    poll(lambda: receiver.alerts("resolved"), what="the resolve after the restart")
    # Group flushes are ordered: a second page would have come before the resolve.
    assert len(receiver.alerts("firing")) == 1, receiver.notifications


def test_alertmanager_down_while_alert_fires_and_resolves(
        write_config, agent_factory, tmp_path, receiver) -> None:
    down = Alertmanager(tmp_path / "am", receiver.port)
    agent = _agent(write_config, agent_factory, tmp_path, [down.url])
    _alert(tmp_path, DISK)
    _alert(tmp_path, {**DISK, "status": "resolved"})
    poll(lambda: value(agent.scrape(), "inferwatch_alertmanager_pending", url=down.url) == 1,
         what="the episode held while Alertmanager is down")
    poll(lambda: (value(agent.scrape(), "inferwatch_alertmanager_errors_total", url=down.url,
                        reason="unreachable") or 0) > 0, what="the failures counted")
    down.start()
    try:
        poll(lambda: am_saw_both(down), 30, what="firing and resolve once it is back")
        assert down.alerts() == [], "resolved, not active"
        poll(lambda: value(agent.scrape(), "inferwatch_alertmanager_pending", url=down.url)
             == 0, what="nothing pending")
    finally:
        down.stop()


def am_saw_both(am: Alertmanager) -> bool:
    return am.received("firing") >= 1 and am.received("resolved") >= 1


@pytest.fixture
def hanging() -> Iterator[str]:
    """A listener that accepts connections and never answers (a wedged Alertmanager)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_each_alertmanager_gets_every_alert_one_down_blocks_none(
        write_config, agent_factory, tmp_path, am, receiver, hanging) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    agent = _agent(write_config, agent_factory, tmp_path, [dead, hanging, am.url],
                   'timeout = "1s"\n')
    _alert(tmp_path, DISK)
    poll(lambda: _names(am) == ["DiskNearlyFull"], what="the alert at the live one")
    _alert(tmp_path, {**DISK, "status": "resolved"})
    poll(lambda: not am.alerts(), what="the resolve at the live one, the others stuck")
    poll(lambda: (value(agent.scrape(), "inferwatch_alertmanager_errors_total", url=hanging,
                        reason="timeout") or 0) > 0, what="the wedged one timing out")

    def stats() -> bool:
        m = agent.scrape()
        return (value(m, "inferwatch_alertmanager_up", url=am.url) == 1
                and value(m, "inferwatch_alertmanager_pending", url=am.url) == 0
                and value(m, "inferwatch_alertmanager_up", url=dead) == 0
                and value(m, "inferwatch_alertmanager_pending", url=dead) == 1
                and value(m, "inferwatch_alertmanager_pending", url=hanging) == 1
                and value(m, "inferwatch_alertmanager_alerts", state="resolved") == 1)
    poll(stats, what="delivered to the live one, held for the two others")


def test_renewed_without_engine_events_until_stale(write_config, agent_factory, tmp_path,
                                                   am, receiver) -> None:
    """Fired once, never renewed by the engine: the sink renews it on its own timer (endsAt
    moves on), stops after stale_after, and Alertmanager resolves it at its endsAt."""
    _agent(write_config, agent_factory, tmp_path, [am.url],
           'resend_interval = "1s"\nresolve_timeout = "2s"\nstale_after = "4s"\n')
    _alert(tmp_path, DISK)
    (first,) = poll(am.alerts, what="the alert")
    later = poll(lambda: [a for a in am.alerts() if _ts(a["endsAt"]) > _ts(first["endsAt"])],
                 what="endsAt renewed by a resend")
    assert later[0]["startsAt"] == first["startsAt"]
    poll(lambda: receiver.alerts("resolved"), 15, what="expired once the renewals stopped")
    assert not am.alerts()
    assert len(receiver.alerts("firing")) == 1


def test_unreachable_alertmanager_falls_back_to_exec(write_config, agent_factory,
                                                     tmp_path) -> None:
    out = tmp_path / "fallback.log"
    script = tmp_path / "fallback.sh"
    script.write_text('#!/bin/sh\necho "$INFERWATCH_ALERT_NAME $INFERWATCH_ALERT_STATUS '
                      f'$INFERWATCH_ALERT_FALLBACK_FROM" >> {out}\n')
    script.chmod(0o755)
    dead = f"http://127.0.0.1:{free_port()}"
    agent = _agent(write_config, agent_factory, tmp_path, [dead],
                   'fallback = "exec"\nfallback_after = "1s"\n'
                   f'[plugins.exec]\nenabled = true\nmatch = ["alert.fallback"]\n'
                   f'on_resolve = true\ninterval = "1s"\ncommand = ["{script}"]\n')
    _alert(tmp_path, DISK)
    poll(lambda: out.exists() and out.read_text().splitlines(), 10,
         what="the fallback command run")
    _alert(tmp_path, {**DISK, "status": "resolved"})
    poll(lambda: out.read_text().splitlines() == [
        "DiskNearlyFull firing alertmanager", "DiskNearlyFull resolved alertmanager"], 10,
        what="the resolve handed over too, each once")
    poll(lambda: value(agent.scrape(), "inferwatch_alertmanager_fallbacks_total") == 2,
         what="two fallbacks counted")
    poll(lambda: value(agent.scrape(), "inferwatch_exec_runs_total", status="0") == 2,
         what="two runs counted")


def test_an_alertmanager_restart_gets_the_firing_alert_back(write_config, agent_factory,
                                                           tmp_path, am, receiver) -> None:
    """Alertmanager keeps no alerts across a restart: the renewals bring it back."""
    _agent(write_config, agent_factory, tmp_path, [am.url], 'resend_interval = "1s"\n')
    _alert(tmp_path, DISK)
    poll(am.alerts, what="the alert")
    am.stop()
    am.start()  # Alertmanager 0.25 persists silences and its notification log, not alerts
    (alert,) = poll(am.alerts, 10, what="the alert back by the next renewal")
    assert alert["startsAt"].startswith("2026-01-01T00:00:00")
