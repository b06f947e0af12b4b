"""The webhook sink's `format = "alertmanager"`: alert events as Alertmanager's webhook
payload (version 4), against a real aiohttp receiver that checks signatures, and against the
parser the Alertmanager integration tests use for what Alertmanager itself posts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.alertroute import fallback_event
from agent.config import ConfigError, build_config
from agent.errors import PermanentDeliveryError
from agent.metrics import Accumulator
from agent.model import Event, Severity
from plugins.webhook import SKIPPED, WebhookStats
from plugins.webhook.config import WebhookConfig
from plugins.webhook.sink import WebhookSink
from tests.integration.alertmanager_helpers import Receiver as AmReceiver
from tests.webhook_receiver import Receiver, receiving, verify

SECRET = b"am-format-secret"
PAYLOAD_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                "commonLabels", "commonAnnotations", "externalURL", "alerts"}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
              "fingerprint"}


def _config(url: str, tmp_path: Path, **extra: Any) -> WebhookConfig:
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    raw = {"enabled": True, "url": url, "format": "alertmanager", "timeout": "2s",
           "secret": {"file": str(tmp_path / "secret")}, **extra}
    found = build_config({"plugins": {"webhook": raw}}, {"webhook": WebhookConfig},
                         base_dir=tmp_path).plugins["webhook"]
    assert isinstance(found, WebhookConfig)
    return found


def alert_event(name: str = "DiskNearlyFull", status: str = "firing", *,
                mount: str = "/data", renewal: bool = False, fp: str = "") -> Event:
    ends = "2026-01-01T00:10:00.000Z" if status == "resolved" else ""
    data = {"alertname": name, "fingerprint": fp or f"fp-{name}-{mount}", "status": status,
            "renewal": renewal, "labels": {"severity": "critical", "host": "node-a",
                                           "mountpoint": mount},
            "annotations": {"summary": f"{mount} nearly full", "runbook_url": "https://rb/x"},
            "startsAt": "2026-01-01T00:00:00.000Z", "endsAt": ends,
            "generatorURL": "http://node-a:9108/api/v1/alerts?alertname=" + name,
            "value": 0.97, "rule_kind": "metric"}
    return Event(kind=f"alert.{status}", source="alerts", host="node-a",
                 severity=Severity.CRITICAL, data=data,
                 attributes={"alertname": name, "fingerprint": data["fingerprint"]})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(secret=SECRET) as found:
        yield found


async def _deliver(config: WebhookConfig, events: list[Event]) -> WebhookSink:
    sink = WebhookSink(config, "webhook")
    await sink.start()
    try:
        await sink.deliver(events)
    finally:
        await sink.stop()
    return sink


async def test_a_firing_then_resolved_alert_is_alertmanagers_payload(
        receiver: Receiver, tmp_path: Path) -> None:
    config = _config(receiver.url, tmp_path, external_url="https://am.example:9093")
    await _deliver(config, [alert_event(), alert_event(status="resolved")])
    assert receiver.bad_signatures == 0
    assert all(verify(SECRET, h, b) for h, b in receiver.requests)
    firing, resolved = receiver.events
    assert set(firing) == PAYLOAD_KEYS
    assert (firing["version"], firing["status"], firing["receiver"]) == (
        "4", "firing", "inferwatch")
    assert firing["groupKey"] == '{}:{alertname="DiskNearlyFull"}'
    assert firing["groupLabels"] == {"alertname": "DiskNearlyFull"}
    assert firing["externalURL"] == "https://am.example:9093"
    assert firing["truncatedAlerts"] == 0
    (alert,) = firing["alerts"]
    assert set(alert) == ALERT_KEYS
    assert alert["labels"] == {"alertname": "DiskNearlyFull", "severity": "critical",
                               "host": "node-a", "mountpoint": "/data"}
    assert firing["commonLabels"] == alert["labels"]
    assert firing["commonAnnotations"] == alert["annotations"] == {
        "summary": "/data nearly full", "runbook_url": "https://rb/x"}
    assert (alert["status"], alert["startsAt"], alert["endsAt"]) == (
        "firing", "2026-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z")
    assert alert["fingerprint"] == "fp-DiskNearlyFull-/data"
    assert alert["generatorURL"].endswith("?alertname=DiskNearlyFull")
    assert resolved["status"] == resolved["alerts"][0]["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2026-01-01T00:10:00.000Z"


async def test_the_alertmanager_test_receivers_parser_reads_it(tmp_path: Path) -> None:
    """tests/integration/alertmanager_helpers.Receiver is what the tests behind a real
    Alertmanager read its notifications with; it reads the agent's unchanged."""
    am_receiver = AmReceiver()
    try:
        config = _config(f"http://127.0.0.1:{am_receiver.port}/hook", tmp_path)
        await _deliver(config, [alert_event(), alert_event("GpuXid"),
                                alert_event(status="resolved")])
        assert [a["labels"]["alertname"] for a in am_receiver.alerts("firing")] == [
            "DiskNearlyFull", "GpuXid"]
        assert [a["labels"]["mountpoint"] for a in am_receiver.alerts("resolved")] == ["/data"]
    finally:
        am_receiver.close()


async def test_batches_group_by_alertname_with_common_labels(receiver: Receiver,
                                                             tmp_path: Path) -> None:
    config = _config(receiver.url, tmp_path, batch=True, max_batch=2)
    events = [alert_event(mount="/a"), alert_event("GpuXid"), alert_event(mount="/b"),
              alert_event(mount="/c"), alert_event(mount="/a", status="resolved")]
    await _deliver(config, events)
    groups = [(n["groupLabels"]["alertname"], [a["labels"]["mountpoint"] for a in n["alerts"]],
               n["status"]) for n in receiver.events]
    assert groups == [("DiskNearlyFull", ["/a", "/b"], "firing"),
                      ("GpuXid", ["/data"], "firing"),
                      ("DiskNearlyFull", ["/c", "/a"], "firing")]
    first = receiver.events[0]
    assert "mountpoint" not in first["commonLabels"]
    assert first["commonLabels"]["severity"] == "critical"
    assert "summary" not in first["commonAnnotations"]  # differs per mount
    assert first["commonAnnotations"] == {"runbook_url": "https://rb/x"}


async def test_one_alerts_firing_and_resolve_never_share_a_request(receiver: Receiver,
                                                                   tmp_path: Path) -> None:
    config = _config(receiver.url, tmp_path, batch=True, max_batch=10)
    await _deliver(config, [alert_event(), alert_event(status="resolved")])
    assert [n["status"] for n in receiver.events] == ["firing", "resolved"]


async def test_renewals_and_others_fallbacks_are_acknowledged_unsent_and_counted(
        receiver: Receiver, tmp_path: Path) -> None:
    config = _config(receiver.url, tmp_path)
    mine = fallback_event(alert_event(mount="/mine"), "alertmanager", "webhook")
    other = fallback_event(alert_event(mount="/other"), "alertmanager", "exec")
    broken = Event(kind="alert.firing", source="alerts", host="h", data={"status": "odd"})
    sink = await _deliver(config, [alert_event(renewal=True), mine, other, broken,
                                   Event(kind="drift.detected", source="drift", host="h")])
    assert [n["alerts"][0]["labels"]["mountpoint"] for n in receiver.events] == ["/mine"]
    out = Accumulator()
    await WebhookStats(sink).collect(out)
    counts = out.series[SKIPPED]
    assert counts == {("renewal",): 1, ("fallback_elsewhere",): 1, ("not_alert",): 1,
                      ("malformed",): 1}


async def test_a_refused_notification_is_dropped_and_the_unsent_acknowledged(
        receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers = [200, 400]
    events = [alert_event(renewal=True), alert_event(mount="/a"), alert_event(mount="/b")]
    sink = WebhookSink(_config(receiver.url, tmp_path), "webhook")
    await sink.start()
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await sink.deliver(events)
    finally:
        await sink.stop()
    assert [e.id for e in caught.value.events] == [events[2].id]
    assert {e.id for e in caught.value.delivered or []} == {events[0].id, events[1].id}
    assert sink.skipped["renewal"] == 1


def test_the_default_match_becomes_alert_kinds() -> None:
    config = build_config({"plugins": {"webhook": {
        "enabled": True, "url": "http://x/", "format": "alertmanager"}}},
        {"webhook": WebhookConfig}).plugins["webhook"]
    assert isinstance(config, WebhookConfig)
    assert config.match == ["alert.*"]


@pytest.mark.parametrize(("extra", "problem"), [
    ({"match": ["alert.*", "drift.*"]}, "plugins.webhook.match[1]: 'drift.*' can take"),
    ({"match": ["*.firing"]}, "plugins.webhook.match[0]: '*.firing' can take"),
    ({"receiver": ""}, "plugins.webhook.receiver: between 1 and 256"),
    ({"external_url": "am.example"}, "plugins.webhook.external_url: must be an http"),
    ({"format": "slack"}, "plugins.webhook.format: "),
])
def test_config_refuses_what_the_format_cannot_carry(extra: dict[str, Any],
                                                     problem: str) -> None:
    raw = {"enabled": True, "url": "http://x/", "format": "alertmanager", **extra}
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"webhook": raw}}, {"webhook": WebhookConfig})
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_envelope_format_is_unchanged_by_default() -> None:
    config = build_config({"plugins": {"webhook": {"enabled": True, "url": "http://x/"}}},
                          {"webhook": WebhookConfig}).plugins["webhook"]
    assert isinstance(config, WebhookConfig)
    assert (config.format, config.match) == ("envelope", ["*"])
