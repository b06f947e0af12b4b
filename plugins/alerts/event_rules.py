"""An event rule: fires at once on a matching event, resolves on the matching clear event
(same `group_by` values) or `resolve_after` the last match.

Matchers and `group_by` name an attribute, or a top-level key of the event's data when no
attribute has that name (`gpu.xid` carries the GPU in attributes and the code in data).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import msgspec

from agent.model import Event
from plugins.alerts.config import RuleConfig
from plugins.alerts.matchers import Matcher, parse_matchers, scalar_text
from plugins.alerts.series import Key
from plugins.alerts.state import Alert, fingerprint
from plugins.alerts.templates import resolve

# An event's evidence kept with its alert for the templates, in memory and in the state
# file (max_alerts of them): beyond this it is cut to its scalars and the heads of its lists.
MAX_SCOPE_BYTES = 4096


def field_text(event: Event, name: str) -> str:
    if name.startswith(("data.", "attributes.")):
        try:
            found = resolve({"data": event.data, "attributes": event.attributes}, name)
        except KeyError:
            return ""
    else:
        found = event.attributes.get(name, event.data.get(name))
    return scalar_text(found) or ""


def _matches(event: Event, matchers: list[Matcher]) -> bool:
    return all(m.test(field_text(event, m.name)) for m in matchers)


class EventRule:
    kind = "event"

    def __init__(self, config: RuleConfig, host: str) -> None:
        self.config, self.name = config, config.name
        self._fire = re.compile(fnmatch.translate(config.event))
        self._clear = re.compile(fnmatch.translate(config.clear_event)) \
            if config.clear_event else None
        self.matchers = parse_matchers(config.matchers)
        self.clear_matchers = parse_matchers(config.clear_matchers)
        self.static = {**config.labels, "alertname": config.name, "severity": config.severity,
                       "host": host}
        self.alerts: dict[Key, Alert] = {}

    def wants(self, kind: str) -> bool:
        return bool(self._fire.match(kind) or (self._clear and self._clear.match(kind)))

    def on_event(self, event: Event, now: float) -> list[Alert]:
        if self._fire.match(event.kind) and _matches(event, self.matchers):
            return self._fired(event, now)
        if self._clear and self._clear.match(event.kind) and \
                _matches(event, self.clear_matchers):
            return self._cleared(event, now)
        return []

    def _key(self, event: Event) -> Key:
        return tuple(field_text(event, g) for g in self.config.group_by)

    def _fired(self, event: Event, now: float) -> list[Alert]:
        key = self._key(event)
        alert = self.alerts.get(key)
        new = alert is None or alert.state == "resolved"
        if alert is None or new:
            labels = {**{g: v for g, v in zip(self.config.group_by, key, strict=True) if v},
                      **self.static}
            alert = self.alerts[key] = Alert(
                rule=self.name, key=key, labels=labels, rule_kind="event",
                fingerprint=fingerprint(self.name, labels), severity=self.config.severity,
                state="firing", active_at=now, starts_at=now)
        alert.last_active, alert.value, alert.scope = now, self._value(event), _scope(event)
        return [alert] if new else []

    def _cleared(self, event: Event, now: float) -> list[Alert]:
        alert = self.alerts.get(self._key(event))
        if alert is None or alert.state != "firing":
            return []
        alert.state, alert.ends_at, alert.active = "resolved", now, False
        alert.scope = _scope(event)
        return [alert]

    def _value(self, event: Event) -> float | None:
        if not self.config.value_from:
            return None
        try:
            found = resolve({"data": event.data, "attributes": event.attributes},
                            self.config.value_from)
        except KeyError:
            return None
        return float(found) if isinstance(found, int | float) and not isinstance(found, bool) \
            else None

    def evaluate(self, _families: object, now: float, _sigs: object = None) -> list[Alert]:
        """Resolve what has not matched for `resolve_after`."""
        changed = []
        for alert in self.alerts.values():
            if alert.state == "firing" and now - alert.last_active >= self.config.resolve_after:
                alert.state, alert.ends_at, alert.active = "resolved", now, False
                changed.append(alert)
        return changed

    def adopt(self, alert: Alert) -> None:
        self.alerts[alert.key] = alert


def _scope(event: Event) -> dict[str, Any]:
    scope = {"kind": event.kind, "data": event.data, "attributes": event.attributes}
    if len(msgspec.json.encode(scope)) <= MAX_SCOPE_BYTES:
        return scope
    scope = {"kind": event.kind, "data": _trim(event.data), "attributes":
             _trim(event.attributes)}
    if len(msgspec.json.encode(scope)) <= MAX_SCOPE_BYTES:
        return scope
    return {"kind": event.kind, "data": {}, "attributes": {}}


def _trim(table: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Scalars kept, strings and lists shortened, tables a level or two deep."""
    out: dict[str, Any] = {}
    for key, value in list(table.items())[:32]:
        if isinstance(value, str):
            out[key] = value[:200]
        elif isinstance(value, list):
            out[key] = [_trim(v, depth + 1) if isinstance(v, dict) else v
                        for v in value[:5] if not isinstance(v, list)] if depth < 2 else []
        elif isinstance(value, dict):
            out[key] = _trim(value, depth + 1) if depth < 2 else {}
        else:
            out[key] = value
    return out
