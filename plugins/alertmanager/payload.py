"""Alerts as Alertmanager's API v2 takes them (`POST /api/v2/alerts`, `postableAlerts`).

Alertmanager refuses a label name outside `[a-zA-Z_][a-zA-Z0-9_]*` and an `endsAt` before
`startsAt` (400, and the alert is lost), so both are made valid here rather than refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from agent.alertroute import MAX_LABELS, MAX_TEXT
from agent.model import utc_timestamp
from plugins.alertmanager.held import Acked, Held

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """A valid Alertmanager label name: other characters become `_`, no leading digit."""
    clean = _NAME_BAD.sub("_", name) or "_"
    return f"_{clean}" if clean[0].isdigit() else clean


def _parse(ts: str) -> float | None:
    try:
        moment = dt.datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _set(raw: object) -> dict[str, str]:
    """Labels or annotations as Alertmanager takes them, bounded as `alert_of` checks them."""
    if not isinstance(raw, dict):
        return {}
    pairs = [(label_name(str(k)[:128]), str(v)[:MAX_TEXT]) for k, v in raw.items()
             if v not in (None, "")]
    return dict(pairs[:MAX_LABELS])


def postable(held: Held, acked: Acked, now: float, resolve_timeout: float) -> list[dict[str, Any]]:
    """The alert to send; a resolve that this Alertmanager never saw fire goes after a
    firing copy, so that it records the episode as having fired (its history and
    `alertmanager_alerts_received_total`), not only as resolved."""
    data = held.event.data
    if held.firing:
        return [_alert(data, now, now + resolve_timeout)]
    ended = _parse(str(data.get("endsAt") or "")) or _parse(held.event.ts) or now
    resolved = _alert(data, now, ended)
    if acked.fired:
        return [resolved]
    return [_alert(data, now, max(ended, now) + resolve_timeout), resolved]


def _alert(data: dict[str, Any], now: float, ends: float) -> dict[str, Any]:
    labels = _set(data.get("labels"))
    labels.setdefault("alertname", str(data.get("alertname", "")))
    starts = _parse(str(data.get("startsAt") or "")) or now
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": _set(data.get("annotations")),
        "startsAt": utc_timestamp(starts),
        "endsAt": utc_timestamp(max(ends, starts)),
    }
    if url := data.get("generatorURL"):
        out["generatorURL"] = str(url)
    return out
