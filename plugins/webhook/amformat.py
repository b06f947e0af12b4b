"""Alertmanager's webhook payload (version 4), so that a receiver written for Alertmanager
(a chat bridge, a ticket hook) takes the agent's alerts unchanged (`payload = "alertmanager"`).

One payload per alertname, like an Alertmanager route grouped by `alertname`. Renewals are
not posted: Alertmanager repeats a notification after hours (`repeat_interval`), not at
every renewal, and a receiver written for it expects a firing once and a resolve once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.alertroute import ALERT_KINDS, FALLBACK_KIND, Alert, MalformedAlertError, alert_of
from agent.model import Event

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
RECEIVER = "inferwatch"


def postable(event: Event) -> Alert | None:
    """The alert to post for `event`; None for a renewal (acknowledged, not posted).
    Raise MalformedAlertError for an event that is not an alert at all."""
    if event.kind not in (*ALERT_KINDS, FALLBACK_KIND):
        raise MalformedAlertError(f"{event.kind} is not an alert event")
    alert = alert_of(event)
    return None if alert.renewal and alert.status == "firing" else alert


def payloads(alerts: Sequence[tuple[Event, Alert]],
             max_alerts: int) -> list[tuple[list[Event], dict[str, Any]]]:
    """Alertmanager webhook bodies, each with the events it carries: the alerts grouped by
    alertname, in order, at most `max_alerts` each."""
    groups: dict[str, list[tuple[Event, Alert]]] = {}
    for pair in alerts:
        groups.setdefault(pair[1].alertname, []).append(pair)
    chunks = [group[i:i + max_alerts] for group in groups.values()
              for i in range(0, len(group), max_alerts)]
    return [([e for e, _ in chunk], _payload(chunk[0][1].alertname, [a for _, a in chunk]))
            for chunk in chunks]


def _payload(name: str, alerts: Sequence[Alert]) -> dict[str, Any]:
    items = [_item(alert) for alert in alerts]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": RECEIVER,
        "groupLabels": {"alertname": name},
        "commonLabels": _common([item["labels"] for item in items]),
        "commonAnnotations": _common([item["annotations"] for item in items]),
        "externalURL": alerts[0].generatorURL.split("?", 1)[0],
        "alerts": items,
    }


def _item(alert: Alert) -> dict[str, Any]:
    return {"status": alert.status, "labels": dict(alert.labels),
            "annotations": {k: v for k, v in alert.annotations.items() if v},
            "startsAt": alert.startsAt, "endsAt": alert.endsAt or ZERO_TIME,
            "generatorURL": alert.generatorURL, "fingerprint": alert.fingerprint}


def _common(tables: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = tables
    return {k: v for k, v in first.items() if all(t.get(k) == v for t in rest)}
