"""The Alertmanager sink's held set and payloads (the real Alertmanager: tests/integration)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import ConfigError, build_config
from plugins.alertmanager.config import AlertmanagerConfig
from plugins.alertmanager.held import Acked, HeldAlerts, episode
from plugins.alertmanager.payload import label_name, postable
from tests.fixtures.iwtest.alerts import alert_event

STARTS = "2026-01-01T00:00:00.000Z"
A, B = "http://am-a:9093", "http://am-b:9093"


def _held(tmp_path: Path, max_alerts: int = 100) -> HeldAlerts:
    return HeldAlerts(tmp_path / "held.db", [A, B], max_alerts)


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_resolved_episode_is_kept_until_every_alertmanager_took_it(tmp_path: Path) -> None:
    held = _held(tmp_path)
    fire = alert_event("X", starts_at=STARTS)
    held.apply(fire, 1.0)
    key = episode(fire)
    held.ack(A, [(key, 1)])
    held.ack(B, [(key, 1)])
    held.apply(alert_event("X", "resolved", starts_at=STARTS), 2.0)
    held.ack(A, [(key, 2)])
    assert held.counts() == {"firing": 0, "resolved": 1}
    assert held.pending(B) == (1, 2.0)
    held.ack(B, [(key, 2)])
    assert held.counts() == {"firing": 0, "resolved": 0}


def test_state_survives_a_restart(tmp_path: Path) -> None:
    held = _held(tmp_path)
    held.open()
    fire, gone = alert_event("X", starts_at=STARTS), alert_event("Gone", starts_at=STARTS)
    held.apply(fire, 1.0)
    held.apply(gone, 1.0)
    held.ack(A, [(episode(fire), 1)])
    held.flush()
    held.apply(alert_event("Gone", "resolved", starts_at=STARTS), 2.0)
    held.ack(A, [(episode(gone), 2)])
    held.ack(B, [(episode(gone), 2)])
    held.flush()
    held.db.close()
    again = _held(tmp_path)
    again.open()
    assert again.state.alerts == held.state.alerts
    assert again.state.acked == {u: a for u, a in held.state.acked.items() if a}
    assert list(again.state.alerts) == [episode(fire)]
    assert again.pending(A) == (0, None)
    assert again.pending(B) == (1, 1.0)
    again.db.close()


def test_acks_of_a_url_no_longer_configured_are_forgotten(tmp_path: Path) -> None:
    held = _held(tmp_path)
    held.open()
    fire = alert_event("X", starts_at=STARTS)
    held.apply(fire, 1.0)
    held.ack(B, [(episode(fire), 1)])
    held.flush()
    held.db.close()
    again = HeldAlerts(tmp_path / "held.db", [A], 100)
    again.open()
    assert again.state.acked == {}
    assert again.pending(A) == (1, 1.0)
    again.db.close()


def test_an_unreadable_state_file_is_set_aside_and_counted(tmp_path: Path) -> None:
    (tmp_path / "held.db").write_bytes(b"not a database, but a stray file" * 200)
    held = _held(tmp_path)
    held.open()
    assert held.unreadable == 1
    assert held.counts() == {"firing": 0, "resolved": 0}
    assert len(list(tmp_path.glob("held.db.unreadable-*"))) == 1
    held.apply(alert_event("X"), 1.0)
    held.flush()
    held.db.close()


def test_an_episode_that_does_not_decode_is_skipped_and_the_rest_kept(
        tmp_path: Path) -> None:
    """quick_check passes a row whose blob is not an episode (a bit flip, another version's
    shape); decoding it raised at every start and the sink never started."""
    held = _held(tmp_path)
    held.open()
    good = alert_event("Good", starts_at=STARTS)
    held.apply(good, 1.0)
    held.flush()
    held.db.close()
    db = sqlite3.connect(tmp_path / "held.db")
    db.execute("INSERT INTO episodes (key, held) VALUES ('bad', x'7b226e6f223a317d')")
    db.commit()
    db.close()
    again = _held(tmp_path)
    again.open()
    assert list(again.state.alerts) == [episode(good)]
    assert again.unreadable == 1
    again.db.close()


def test_an_older_event_replayed_changes_nothing(tmp_path: Path) -> None:
    held = _held(tmp_path)
    fire = alert_event("X", starts_at=STARTS)
    resolve = alert_event("X", "resolved", starts_at=STARTS)
    assert held.apply(fire, 1.0)
    assert held.apply(resolve, 2.0)
    assert not held.apply(fire, 3.0), "an at-least-once replay must not re-fire"
    assert held.counts() == {"firing": 0, "resolved": 1}


def test_new_episode_is_held_beside_the_unsent_resolve_of_the_last(tmp_path: Path) -> None:
    held = _held(tmp_path)
    held.apply(alert_event("X", starts_at=STARTS), 1.0)
    held.apply(alert_event("X", "resolved", starts_at=STARTS), 2.0)
    held.apply(alert_event("X", starts_at="2026-01-02T00:00:00.000Z"), 3.0)
    assert held.counts() == {"firing": 1, "resolved": 1}


def test_bounded_oldest_resolved_first(tmp_path: Path) -> None:
    held = _held(tmp_path, max_alerts=2)
    held.apply(alert_event("Old", starts_at=STARTS), 1.0)
    held.apply(alert_event("Gone", "resolved", starts_at=STARTS), 2.0)
    held.apply(alert_event("New", starts_at=STARTS), 3.0)
    names = sorted(h.event.data["alertname"] for h in held.state.alerts.values())
    assert names == ["New", "Old"]
    assert held.dropped == 1


def test_due_renews_firing_after_the_resend_interval(tmp_path: Path) -> None:
    held = _held(tmp_path)
    fire = alert_event("X", starts_at=STARTS)
    held.apply(fire, 1.0)
    key = episode(fire)
    assert [k for k, _, _ in held.due(A, {}, 60, 100.0, limit=10)] == [key]
    held.ack(A, [(key, 1)])
    assert held.due(A, {key: 100.0}, 60, 159.0, limit=10) == []
    assert [k for k, _, _ in held.due(A, {key: 100.0}, 60, 160.0, limit=10)] == [key]


def test_payload_has_a_finite_ends_at_and_valid_label_names(tmp_path: Path) -> None:
    held = _held(tmp_path)
    event = alert_event("X", labels={"gpu-uuid": "G1", "0x": "y", "empty": ""},
                        starts_at=STARTS)
    held.apply(event, 1.0)
    (item,) = held.state.alerts.values()
    now = _ts("2026-01-01T00:10:00+00:00")
    (alert,) = postable(item, Acked(), now, 180.0)
    assert alert["labels"] == {"alertname": "X", "gpu_uuid": "G1", "_0x": "y",
                               "severity": "warning", "host": "node-a"}
    assert _ts(alert["startsAt"]) == _ts(STARTS)
    assert _ts(alert["endsAt"]) == now + 180.0
    assert alert["generatorURL"] == "http://node-a:9879/api/v1/alerts"


def test_a_resolve_never_seen_firing_goes_after_a_firing_copy(tmp_path: Path) -> None:
    held = _held(tmp_path)
    resolved_at = "2026-01-01T00:05:00.000Z"
    held.apply(alert_event("X", "resolved", starts_at=STARTS, ends_at=resolved_at), 1.0)
    (item,) = held.state.alerts.values()
    now = _ts("2026-01-01T00:10:00+00:00")
    fired, resolved = postable(item, Acked(), now, 180.0)
    assert _ts(fired["endsAt"]) > now, "firing"
    assert _ts(resolved["endsAt"]) == _ts(resolved_at)
    (only,) = postable(item, Acked(version=1, fired=True), now, 180.0)
    assert _ts(only["endsAt"]) == _ts(resolved_at)


@given(st.text(max_size=30))
def test_label_names_are_always_valid(name: str) -> None:
    clean = label_name(name)
    assert clean[0].isalpha() or clean[0] == "_"
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in clean)


def _config(**keys: Any) -> AlertmanagerConfig:
    config = build_config({"plugins": {"alertmanager": {"enabled": True, **keys}}},
                          {"alertmanager": AlertmanagerConfig}).plugins["alertmanager"]
    assert isinstance(config, AlertmanagerConfig)
    return config


def test_ends_at_defaults_to_three_resends() -> None:
    assert _config(resend_interval="20s").ends_after == 60.0
    assert _config(resolve_timeout="10m").ends_after == 600.0


@pytest.mark.parametrize(("keys", "problem"), [
    ({"urls": ["ftp://x"]}, "plugins.alertmanager.urls[0]: must be an http"),
    ({"urls": ["http://u:p@am:9093"]}, "plugins.alertmanager.urls[0]: credentials do not"),
    ({"urls": []}, "plugins.alertmanager.urls: give between 1 and 16"),
    ({"urls": [A, A]}, "plugins.alertmanager.urls: a URL is listed twice"),
    ({"urls": ["http://am:9093/api/v2/alerts"]},
     "plugins.alertmanager.urls[0]: the base URL of an Alertmanager, without '/api/v2/alerts'"),
    ({"urls": [A, "http://am:9093/prefix/api/v2/"]},
     "plugins.alertmanager.urls[1]: the base URL of an Alertmanager, without '/api/v2/'"),
    ({"resolve_timeout": "30s"}, "plugins.alertmanager.resolve_timeout: must exceed"),
    ({"fallback": "no such"}, "plugins.alertmanager.fallback: 'no such' is not a plugin"),
    ({"password": {"env": "PATH"}}, "plugins.alertmanager.username: a password needs"),
    ({"username": "a:b"}, "plugins.alertmanager.username: no colon"),
    ({"username": "a\r\nX-Evil: 1"}, "plugins.alertmanager.username: no colon"),
])
def test_config_errors_name_their_key(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(**keys)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_bearer_token_over_two_lines_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first-half-of-tok\nsecond-half\n")
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"alertmanager": {
            "enabled": True, "bearer_token": {"file": "token"}}}},
            {"alertmanager": AlertmanagerConfig}, base_dir=tmp_path)
    assert caught.value.problems == [
        "plugins.alertmanager.bearer_token: must not contain CR, LF or NUL"]


def test_a_firing_alert_the_engine_stopped_renewing_is_left_to_expire(tmp_path: Path) -> None:
    held = _held(tmp_path)
    fire = alert_event("X", starts_at=STARTS)
    held.apply(fire, 1000.0)
    key = episode(fire)
    held.ack(A, [(key, 1)])
    assert held.due(A, {key: 0.0}, 60, 100.0, limit=10, fresh_after=900.0) != []
    assert held.due(A, {key: 0.0}, 60, 100.0, limit=10, fresh_after=1001.0) == []
    assert held.renewing(1001.0) == []
    assert not held.expire(999.0)
    assert held.expire(1001.0)
    assert held.counts() == {"firing": 0, "resolved": 0}
    assert held.expired == 1


def test_stale_after_defaults_to_five_resends() -> None:
    assert _config(resend_interval="20s").stale_seconds == 100.0
    with pytest.raises(ConfigError, match="stale_after: must be at least 2 x"):
        _config(stale_after="90s")


def test_the_sender_forgets_the_send_times_of_forgotten_episodes(tmp_path: Path) -> None:
    from plugins.alertmanager.sender import Sender  # noqa: PLC0415
    from plugins.alertmanager.sink import AlertStore  # noqa: PLC0415

    held = _held(tmp_path)
    sender = Sender(_config(urls=[A, B]), AlertStore(held), A, 0)
    for i in range(50):  # episodes come and go
        held.apply(alert_event(f"X{i}", starts_at=STARTS), 1.0)
        due = held.due(A, sender.sent_at, 60, 100.0, limit=10)
        sender._accepted(due, 100.0)
        held.forget(due[0][0])
    assert len(sender.sent_at) <= 2, "bounded by what is held, not by what ever was"


def test_payload_is_bounded(tmp_path: Path) -> None:
    held = _held(tmp_path)
    held.apply(alert_event("X", labels={"big": "v" * 100_000}, summary="s" * 100_000), 1.0)
    (item,) = held.state.alerts.values()
    (alert,) = postable(item, Acked(), 0.0, 180.0)
    assert len(alert["labels"]["big"]) == 4096
    assert len(alert["annotations"]["summary"]) == 4096
