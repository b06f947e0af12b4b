"""Engines on a fake clock, configs from TOML-shaped dicts, registries as read-back dicts."""

from __future__ import annotations

from typing import Any

from agent.config import build_config
from agent.model import Event, Severity
from agent.readback import Families
from plugins.alerts.config import AlertsConfig
from plugins.alerts.engine import Engine


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(*rules: dict[str, Any], **section: Any) -> AlertsConfig:
    raw = {"plugins": {"alerts": {"builtin_rules": False, "rules": list(rules), **section}}}
    built = build_config(raw, {"alerts": AlertsConfig}).plugins["alerts"]
    assert isinstance(built, AlertsConfig)
    return built


def make_event(kind: str, *, severity: Severity = Severity.INFO,
               data: dict[str, Any] | None = None,
               attributes: dict[str, Any] | None = None) -> Event:
    return Event(kind=kind, source="alerts", host="h", severity=severity, data=data or {},
                 attributes=attributes or {})


class Harness:
    """An engine, its clock, and every event it emitted."""

    def __init__(self, settings: AlertsConfig, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.engine = Engine(settings, "h", make_event, self.clock)
        self.sent: list[Event] = []
        self.accept = True

    def _emit(self, event: Event) -> bool:
        if self.accept:
            self.sent.append(event)
        return self.accept

    def step(self, families: Families, advance: float = 15.0) -> list[Event]:
        """Advance the clock, evaluate, emit; the events this step emitted."""
        self.clock.now += advance
        self.engine.evaluate(families)
        return self.flush()

    def flush(self) -> list[Event]:
        before = len(self.sent)
        self.engine.outgoing(self._emit)
        return self.sent[before:]

    def feed(self, *events: Event) -> list[Event]:
        self.engine.on_events(events)
        return self.flush()


def gauge(name: str, value: float, **labels: str) -> Families:
    return {name: (tuple(labels), [{tuple(labels.values()): value}])}


def kinds(events: list[Event], *, renewals: bool = False) -> list[str]:
    """Event kinds; renewals only when asked for (they come every resend_interval)."""
    return [e.kind + (" renewal" if e.data.get("renewal") else "") for e in events
            if renewals or not e.data.get("renewal")]
