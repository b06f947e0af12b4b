"""The MQTT alerts topic: one retained topic per label set, cleared by an empty payload."""

from __future__ import annotations

from agent.model import Event
from plugins.mqtt.sink import alert_row, retained
from tests.fixtures.iwtest.alerts import alert_event

PREFIX = "inferwatch/v1/alerts"  # a host named "alerts": its events are not retained


def test_firing_row_carries_the_envelope_resolve_clears() -> None:
    fire = alert_event("DiskNearlyFull", labels={"mountpoint": "/data"})
    fp = fire.data["fingerprint"]
    assert alert_row(PREFIX, fire, b"{...}") == (f"{PREFIX}/alerts/DiskNearlyFull/{fp}",
                                                 b"{...}")
    resolve = alert_event("DiskNearlyFull", "resolved", labels={"mountpoint": "/data"})
    assert alert_row(PREFIX, resolve, b"{...}") == (f"{PREFIX}/alerts/DiskNearlyFull/{fp}", b"")


def test_wildcards_in_an_alertname_do_not_become_topic_levels() -> None:
    event = alert_event("a/b+#\0")
    topic, _ = alert_row(PREFIX, event, b"x") or ("", b"")
    assert topic == f"{PREFIX}/alerts/a_b___/{event.data['fingerprint']}"


def test_other_and_malformed_events_have_no_alert_row() -> None:
    assert alert_row(PREFIX, Event(kind="drift.detected", source="d", host="h"), b"x") is None
    bad = Event(kind="alert.firing", source="d", host="h", data={"alertname": 1})
    assert alert_row(PREFIX, bad, b"x") is None


def test_only_the_alerts_subtree_is_retained() -> None:
    assert retained(PREFIX, f"{PREFIX}/alerts/X/0123")
    assert not retained(PREFIX, f"{PREFIX}/events/alert/firing")
    assert not retained(PREFIX, f"{PREFIX}/status")


def test_a_huge_alertname_makes_a_bounded_topic() -> None:
    event = alert_event("A" * 100_000)
    topic, _ = alert_row(PREFIX, event, b"x") or ("", b"")
    assert len(topic) < 300
