"""What every alert sink shares: its routing keys, the alert read from an event, fallbacks.

Alert events are the `alerts` engine's (docs/alerts-sinks.md); sinks read them
through `alert_of`, which validates and bounds them, so a malformed one is counted and
skipped, never a crash. Routing by kind and severity is the core's (`match`,
`min_severity`); `match_labels` and `fallback` are the alert sinks' own (docs/alerts-sinks.md).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, ClassVar, Literal

import msgspec

from agent.config import Duration, FieldError, SinkConfig
from agent.model import Event, Severity

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ALERT_KINDS = ("alert.firing", "alert.resolved")
FALLBACK_KIND = "alert.fallback"
MAX_LABELS = 64
MAX_TEXT = 4096  # per label value or annotation: a page, not a book
_PLUGIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MiB = 1 << 20


class AlertSinkConfig(SinkConfig):
    """Keys of an alert sink: the core's routing and outbox keys (docs/sinks.md), taking
    alert events by default, and label routing and a fallback of its own."""

    enabled: bool = False
    match: list[str] = msgspec.field(default_factory=lambda: ["alert.*"])
    # {label = "glob"}: only alerts whose labels all match (e.g. {team = "ml"}).
    match_labels: dict[str, str] = msgspec.field(default_factory=dict)
    # Another sink plugin that gets this one's alerts (as `alert.fallback` events) when
    # none of this sink's receivers took them for `fallback_after`.
    fallback: str = ""
    fallback_after: Duration = Duration(300.0)
    supports_fallback: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fallback and not _PLUGIN_NAME.match(self.fallback):
            raise FieldError("fallback", f"{self.fallback!r} is not a plugin name")
        if self.fallback and not self.supports_fallback:
            raise FieldError("fallback", "this sink cannot tell when it keeps failing")


class Alert(msgspec.Struct, kw_only=True, frozen=True):
    """An alert event's `data`, as the sinks use it."""

    alertname: str
    fingerprint: str
    status: Literal["firing", "resolved"]
    renewal: bool = False
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    startsAt: str = ""  # noqa: N815 - Alertmanager's name, kept on the wire
    endsAt: str = ""  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    value: float | None = None
    rule_kind: str = ""


class MalformedAlertError(ValueError):
    """An alert event whose data a sink cannot use; the reason is short and has no data."""


def alert_of(event: Event) -> Alert:
    """The alert an `alert.*` event carries, checked and bounded; raise MalformedAlertError."""
    try:
        alert = msgspec.convert(event.data, Alert)
    except msgspec.ValidationError as exc:
        raise MalformedAlertError(str(exc)[:200]) from None
    if not alert.alertname or not alert.fingerprint:
        raise MalformedAlertError("alertname and fingerprint must not be empty")
    if len(alert.labels) > MAX_LABELS or len(alert.annotations) > MAX_LABELS:
        raise MalformedAlertError(f"more than {MAX_LABELS} labels or annotations")
    return msgspec.structs.replace(
        alert, labels={k[:128]: v[:MAX_TEXT] for k, v in alert.labels.items()},
        annotations={k[:128]: v[:MAX_TEXT] for k, v in alert.annotations.items()})


def alert_routed(config: AlertSinkConfig, plugin: str, event: Event) -> bool:
    """Whether this sink takes `event`: kind, severity, labels; a fallback only its own."""
    if not any(fnmatch.fnmatchcase(event.kind, glob) for glob in config.match):
        return False
    if event.kind == FALLBACK_KIND and event.attributes.get("fallback_to") != plugin:
        return False
    if event.kind not in (*ALERT_KINDS, FALLBACK_KIND):
        return False
    rank = SEVERITY_RANK.get(str(event.severity), 0)
    if rank < SEVERITY_RANK[config.min_severity]:
        return False
    return labels_match(config.match_labels, event.data.get("labels"))


def labels_match(matchers: dict[str, str], labels: object) -> bool:
    """Every matcher's glob matches its label's value (a missing label is "")."""
    if not matchers:
        return True
    found = labels if isinstance(labels, dict) else {}
    return all(fnmatch.fnmatchcase(str(found.get(name, "")), glob)
               for name, glob in matchers.items())


def fallback_event(event: Event, source: str, target: str) -> Event:
    """The same alert, handed to `target` because `source` could not deliver it."""
    attributes: dict[str, Any] = {**event.attributes, "fallback_to": target,
                                  "fallback_from": source}
    data: dict[str, Any] = {**event.data, "fallback_from": source}
    return Event(kind=FALLBACK_KIND, source=source, host=event.host,
                 severity=Severity(event.severity), attributes=attributes, data=data)
