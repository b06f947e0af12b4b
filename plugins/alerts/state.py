"""One alert's lifecycle: inactive -> pending -> firing -> resolved, with hysteresis.

An alert becomes *active* when its rule's fire condition holds (debounced: M of the last N
evaluations) and stays active until the clear condition holds (M of N again): a value that
hovers between the clear and the fire threshold neither fires anew nor resolves. Active for
`for` makes it firing; inactive again, a firing alert keeps firing for `keep_firing_for`,
then resolves. A pending alert that goes inactive is dropped without a word.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["pending", "firing", "resolved"]


def fingerprint(alertname: str, labels: dict[str, str]) -> str:
    """16 hex digits, stable across restarts and hosts: alertname and the sorted labels."""
    text = "\0".join([alertname, *(f"{k}\0{v}" for k, v in sorted(labels.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    rule: str
    key: tuple[str, ...]  # the series' label values (metric rules) or group_by values
    labels: dict[str, str]
    fingerprint: str
    rule_kind: Literal["metric", "event"]
    severity: str
    state: State = "pending"
    active_at: float = 0.0  # the condition began to hold
    starts_at: float = 0.0  # firing since
    ends_at: float = 0.0  # resolved at
    last_active: float = 0.0  # the condition last held (keep_firing_for counts from here)
    last_sent: float = 0.0  # the last alert.firing sent (renewals follow resend_interval)
    sent: str = ""  # the last status emitted: "", "firing" or "resolved"
    value: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)  # the event's data for templates
    active: bool = True
    hits: deque[bool] = field(default_factory=lambda: deque(maxlen=1))
    missing_since: float | None = None

    def unsent(self) -> bool:
        """A transition not yet emitted (after a crash, on the next start)."""
        return (self.state == "firing" and self.sent != "firing") or \
            (self.state == "resolved" and self.sent != "resolved")

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "key": list(self.key), "labels": self.labels,
                "fingerprint": self.fingerprint, "rule_kind": self.rule_kind,
                "severity": self.severity, "state": self.state, "active_at": self.active_at,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "last_active": self.last_active, "last_sent": self.last_sent,
                "sent": self.sent, "value": self.value, "annotations": self.annotations,
                "scope": self.scope}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Alert:
        return cls(rule=str(raw["rule"]), key=tuple(str(k) for k in raw["key"]),
                   labels={str(k): str(v) for k, v in raw["labels"].items()},
                   fingerprint=str(raw["fingerprint"]), rule_kind=raw["rule_kind"],
                   severity=str(raw["severity"]), state=raw["state"],
                   active_at=float(raw["active_at"]), starts_at=float(raw["starts_at"]),
                   ends_at=float(raw["ends_at"]), last_active=float(raw["last_active"]),
                   last_sent=float(raw["last_sent"]), sent=str(raw["sent"]),
                   value=raw["value"], annotations=dict(raw["annotations"]),
                   scope=dict(raw.get("scope") or {}))


@dataclass(frozen=True, slots=True)
class Timing:
    for_: float = 0.0
    keep_firing_for: float = 0.0
    m: int = 1
    n: int = 1


def step(alert: Alert, now: float, active: bool, timing: Timing) -> bool:
    """Advance one evaluation; True when the alert changed state (firing or resolved)."""
    alert.active = active
    if active:
        alert.last_active = now
    if alert.state == "pending":
        if active and now - alert.active_at >= timing.for_:
            alert.state, alert.starts_at = "firing", now
            return True
        return False
    if alert.state == "firing" and not active and \
            now - alert.last_active >= timing.keep_firing_for:
        alert.state, alert.ends_at = "resolved", now
        return True
    return False
