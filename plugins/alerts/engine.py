"""The alert engine without I/O: rules in, alert events out; the service does the rest.

Every state change marks the engine dirty; the service writes the state file before it
emits, so a transition that was decided is never lost, and one that was emitted is at most
sent again (same fingerprint and startsAt: receivers dedupe) after a crash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from agent.model import Event, Severity, utc_timestamp
from agent.readback import Families
from plugins.alerts.config import AlertsConfig, RuleConfig
from plugins.alerts.event_rules import EventRule
from plugins.alerts.metric_rules import MetricRule
from plugins.alerts.series import Signatures
from plugins.alerts.state import Alert
from plugins.alerts.templates import render

log = structlog.get_logger("inferwatch.alerts")
Rule = MetricRule | EventRule
MakeEvent = Callable[..., Event]


def compile_rules(config: AlertsConfig, host: str) -> list[Rule]:
    from plugins.alerts.builtin import builtin_rules  # noqa: PLC0415

    chosen: dict[str, RuleConfig] = {}
    if config.builtin_rules:
        chosen = {r.name: r for r in builtin_rules()}
    chosen.update({r.name: r for r in config.rules})  # a user rule replaces a built-in one
    return [MetricRule(r, host, config.interval) if r.metric else EventRule(r, host)
            for name, r in chosen.items() if name not in config.disabled_rules]


class Stats:
    """The engine's own counters, exported by the service after every evaluation."""

    def __init__(self) -> None:
        self.evaluations = 0
        self.seconds = 0.0
        self.last_seconds = 0.0
        self.errors: dict[str, int] = {}
        self.template_errors = 0
        self.overflow = 0
        self.write_errors = 0
        self.events_seen = 0


class Engine:
    def __init__(self, config: AlertsConfig, host: str, make_event: MakeEvent,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.host, self.make_event, self.clock = config, host, make_event, clock
        self.rules = {r.name: r for r in compile_rules(config, host)}
        self.event_rules = [r for r in self.rules.values() if isinstance(r, EventRule)]
        self.stats = Stats()
        self.dirty = False
        self._total = 0  # alerts held, kept current while rules run
        self._signatures = Signatures()  # series sets, shared by the rules of one metric
        # Evaluated family by family (a family's dicts stay in the CPU's cache for all its
        # rules); growth is then settled in config order, as if evaluated in that order.
        self._by_family = sorted(self.rules.values(), key=lambda r: r.config.metric or "")
        self._position = {name: i for i, name in enumerate(self.rules)}
        self.generator_url = config.generator_url or f"http://{host}:9879/api/v1/alerts"

    # -- inputs ---------------------------------------------------------------------------

    def evaluate(self, families: Families) -> None:
        now, began = self.clock(), time.thread_time()
        self._total, sigs = self.count(), self._signatures
        sigs.next()
        grown: dict[str, int] = {}
        for rule in self._by_family:
            before = len(rule.alerts)
            try:
                changed = rule.evaluate(families, now, sigs)
            except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
                self._failed(rule, exc)
                continue
            if changed or len(rule.alerts) != before:
                grown[rule.name] = before
        sigs.next()  # hold no part past the evaluation (see Signatures)
        for name in sorted(grown, key=self._position.__getitem__):
            self._grown(self.rules[name], grown[name])
        self.stats.evaluations += 1
        self.stats.last_seconds = time.thread_time() - began
        self.stats.seconds += self.stats.last_seconds

    def on_events(self, events: Iterable[Event]) -> None:
        now = self.clock()
        self._total = self.count()
        for event in events:
            if event.kind.startswith("alert."):
                continue  # our own output is never an input
            self.stats.events_seen += 1
            for rule in self.event_rules:
                if rule.wants(event.kind):
                    self._guarded(rule, lambda r=rule, e=event: r.on_event(e, now))  # type: ignore[misc]

    def _guarded(self, rule: Rule, run: Callable[[], list[Alert]]) -> None:
        before = len(rule.alerts)
        try:
            changed = run()
        except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
            self._failed(rule, exc)
            return
        if changed or len(rule.alerts) != before:
            self._grown(rule, before)

    def _failed(self, rule: Rule, exc: Exception) -> None:
        self.stats.errors[rule.name] = self.stats.errors.get(rule.name, 0) + 1
        log.error("alert rule failed", rule=rule.name, error=f"{type(exc).__name__}: {exc}")

    def _grown(self, rule: Rule, before: int) -> None:
        """A rule changed its alerts: mark dirty, and hold the total to max_alerts. `_total`
        follows the number of alerts, so the cap costs nothing per unchanged rule."""
        self.dirty = True
        grown = len(rule.alerts) - before
        if grown > 0 and self._total + grown > self.config.max_alerts:
            self._overflow(rule, self._total + grown - self.config.max_alerts)
        self._total += len(rule.alerts) - before

    def _overflow(self, rule: Rule, excess: int) -> None:
        """Beyond max_alerts the newest alerts that were never sent are refused, counted."""
        fresh = [k for k, a in rule.alerts.items() if not a.sent][-excess:]
        for key in fresh:
            del rule.alerts[key]
        self.stats.overflow += len(fresh)

    def count(self) -> int:
        return sum(len(r.alerts) for r in self.rules.values())

    # -- outputs --------------------------------------------------------------------------

    def outgoing(self, emit: Callable[[Event], bool]) -> int:
        """Emit firing and resolved transitions not yet emitted and renewals that are due;
        mark them sent (an event the bus refused stays due). Resolved alerts leave the
        engine. Call after saving; returns how many went out."""
        now, sent = self.clock(), 0
        for rule in self.rules.values():
            for key, alert in list(rule.alerts.items()):
                renew = alert.state == "firing" and alert.sent == "firing" and \
                    now - alert.last_sent >= self.config.resend_interval
                if (alert.unsent() or renew) and emit(self._event(rule, alert, renewal=renew)):
                    alert.sent, self.dirty, sent = alert.state, True, sent + 1
                    if alert.state == "firing":
                        alert.last_sent = now
                if alert.state == "resolved" and alert.sent == "resolved":
                    del rule.alerts[key]
                    self.dirty = True
        return sent

    def _event(self, rule: Rule, alert: Alert, *, renewal: bool) -> Event:
        data = self.view(rule, alert, sending=True)
        data.pop("state")
        data["renewal"] = renewal
        status = data["status"]
        return self.make_event(
            f"alert.{status}", severity=Severity(alert.severity), data=data,
            attributes={"alertname": rule.name, "fingerprint": alert.fingerprint,
                        "severity": alert.severity, "state": status, "labels": alert.labels})

    def view(self, rule: Rule, alert: Alert, *, sending: bool = False) -> dict[str, Any]:
        """An alert as docs/alerts.md has it ("What is emitted"), plus its `state`. Templates that
        fail count as errors when the alert is sent (not on every look at it)."""
        alert.annotations = self._annotations(rule, alert, count=sending)
        firing = alert.state != "resolved"
        return {
            "alertname": rule.name, "fingerprint": alert.fingerprint,
            "status": "firing" if firing else "resolved", "renewal": False,
            "labels": dict(alert.labels), "annotations": alert.annotations,
            "startsAt": utc_timestamp(alert.starts_at or alert.active_at),
            "endsAt": "" if firing else utc_timestamp(alert.ends_at),
            "generatorURL": f"{self.generator_url}?alertname={rule.name}",
            "value": _finite(alert.value), "rule_kind": alert.rule_kind, "state": alert.state,
        }

    def _annotations(self, rule: Rule, alert: Alert, *, count: bool) -> dict[str, str]:
        config = rule.config
        scope = {"alertname": rule.name, "severity": alert.severity, "host": self.host,
                 "value": _finite(alert.value), "fire": config.fire, "clear": config.clear,
                 "labels": alert.labels, "rule_kind": alert.rule_kind,
                 "fingerprint": alert.fingerprint, "data": alert.scope.get("data", {}),
                 "attributes": alert.scope.get("attributes", {})}
        out = {}
        for key in ("summary", "description", "runbook_url"):
            out[key], ok = render(getattr(config, key), scope)
            self.stats.template_errors += count and not ok
        return out

    def states(self) -> dict[tuple[str, str, str], int]:
        """How many alerts by (alertname, severity, state), pending and firing."""
        counts: dict[tuple[str, str, str], int] = {}
        for rule in self.rules.values():
            for alert in rule.alerts.values():
                if alert.state != "resolved":
                    key = (rule.name, alert.severity, alert.state)
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts, for GET /api/v1/alerts."""
        return [self.view(rule, alert) for rule in self.rules.values()
                for alert in rule.alerts.values() if alert.state != "resolved"]

    # -- persistence ----------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        self.dirty = False
        return [a.to_json() for r in self.rules.values() for a in r.alerts.values()]

    def restore(self, saved: list[Alert]) -> None:
        """Resume alerts from the state file. One whose rule is gone and that was sent as
        firing resolves now (its resolve must still go out); the rest are forgotten."""
        now = self.clock()
        for alert in saved:
            rule = self.rules.get(alert.rule)
            if rule is not None and rule.kind == alert.rule_kind:
                rule.adopt(alert)
            elif alert.sent == "firing" or (alert.unsent() and alert.state == "resolved"):
                self._orphan(alert, now)
        self.dirty = True

    def _orphan(self, alert: Alert, now: float) -> None:
        if alert.state != "resolved":
            alert.state, alert.ends_at = "resolved", now
        config = RuleConfig(name=alert.rule, severity=alert.severity,  # type: ignore[arg-type]
                            event="alert.orphaned")
        rule = self.rules.setdefault(alert.rule, EventRule(config, self.host))
        rule.adopt(alert)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
