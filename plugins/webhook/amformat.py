"""Alert events as Alertmanager's webhook receiver payload (`format = "alertmanager"`).

Alertmanager's `webhook_config` POSTs `{"version": "4", "groupKey", "truncatedAlerts",
"status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
"alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
"fingerprint"}]}`; a receiver written for it (a chat bridge, a ticketing hook) takes the
agent's alerts unchanged. Alerts are grouped by `alertname`, Alertmanager's usual `group_by`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent.alertroute import ALERT_KINDS, FALLBACK_KIND, Alert, MalformedAlertError, alert_of
from agent.model import Event

VERSION = "4"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert: not known yet
PAYLOAD_KEYS = frozenset({"version", "groupKey", "truncatedAlerts", "status", "receiver",
                          "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                          "alerts"})
ALERT_KEYS = frozenset({"status", "labels", "annotations", "startsAt", "endsAt",
                        "generatorURL", "fingerprint"})


def wanted(event: Event, plugin: str, renewals: bool) -> tuple[Alert | None, str]:
    """The alert this event should send, or None and why not: `not_alert` (a kind the
    format cannot carry), `fallback_elsewhere` (an `alert.fallback` for another sink),
    `renewal` (a firing alert sent again; Alertmanager repeats on its own schedule),
    `malformed`."""
    if event.kind == FALLBACK_KIND:
        if event.attributes.get("fallback_to") != plugin:
            return None, "fallback_elsewhere"
    elif event.kind not in ALERT_KINDS:
        return None, "not_alert"
    try:
        alert = alert_of(event)
    except MalformedAlertError:
        return None, "malformed"
    if alert.renewal and alert.status == "firing" and not renewals:
        return None, "renewal"
    return alert, ""


def _alert(alert: Alert) -> dict[str, Any]:
    labels = {"alertname": alert.alertname, **alert.labels}
    return {
        "status": alert.status, "labels": labels, "annotations": dict(alert.annotations),
        "startsAt": alert.startsAt or ZERO_TIME,
        "endsAt": alert.endsAt if alert.status == "resolved" and alert.endsAt else ZERO_TIME,
        "generatorURL": alert.generatorURL, "fingerprint": alert.fingerprint,
    }


def _common(sets: Sequence[dict[str, str]]) -> dict[str, str]:
    first, *rest = sets
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in rest)}


def _label_set(labels: dict[str, str]) -> str:
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def payload(alerts: Sequence[Alert], receiver: str, external_url: str) -> dict[str, Any]:
    """One notification for alerts of one `alertname` (at least one)."""
    items = [_alert(a) for a in alerts]
    group = {"alertname": alerts[0].alertname}
    firing = any(item["status"] == "firing" for item in items)
    return {
        "version": VERSION, "groupKey": f"{{}}:{_label_set(group)}", "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved", "receiver": receiver,
        "groupLabels": group,
        "commonLabels": _common([item["labels"] for item in items]),
        "commonAnnotations": _common([item["annotations"] for item in items]),
        "externalURL": external_url, "alerts": items,
    }


def by_alertname(pairs: Sequence[tuple[Event, Alert]],
                 size: int) -> list[list[tuple[Event, Alert]]]:
    """Groups of one alertname, in order of first appearance, at most `size` alerts each
    and each alert (fingerprint) once: its firing and resolve go in separate requests, in
    order, as Alertmanager would notify them."""
    groups: dict[str, list[list[tuple[Event, Alert]]]] = {}
    order: list[list[tuple[Event, Alert]]] = []
    for pair in pairs:
        chunks = groups.setdefault(pair[1].alertname, [])
        if (not chunks or len(chunks[-1]) >= size
                or any(a.fingerprint == pair[1].fingerprint for _, a in chunks[-1])):
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(pair)
    return order
