"""A metric rule, compiled once: selection, function, thresholds with hysteresis, timing.

One alert per matching label set. A series that disappears stops being judged: a pending
alert on it is dropped, a firing one resolves once it has been missing for `keep_firing_for`
and at least two evaluation intervals (a restart or a collector's skipped tick is not a
resolve). A rate over a history shorter than its range judges nothing yet.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterator

from agent.metrics import Labels
from agent.readback import Families
from plugins.alerts.config import RuleConfig
from plugins.alerts.matchers import parse_matchers
from plugins.alerts.series import Counter, Key, Selection, apply, ratio
from plugins.alerts.state import Alert, Timing, fingerprint, step

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne}


class MetricRule:
    kind = "metric"

    def __init__(self, config: RuleConfig, host: str, interval: float) -> None:
        self.config, self.name = config, config.name
        assert config.fire is not None  # noqa: S101 - validated by RuleConfig
        self.fire, self.clear = config.fire, config.fire if config.clear is None else config.clear
        self.op = OPS[config.op]
        m, n = config.window()
        self.timing = Timing(config.for_ or 0.0, config.keep_firing_for or 0.0, m, n)
        self.grace = max(self.timing.keep_firing_for, 2 * interval)
        self.range = float(config.range or 0.0)
        self.static = {**config.labels, "alertname": config.name, "severity": config.severity,
                       "host": host}
        self.selection = Selection(config.metric, parse_matchers(config.matchers))
        self.denominator = Selection(config.divide_by, []) if config.divide_by else None
        self.alerts: dict[Key, Alert] = {}
        self._candidates: dict[Key, deque[bool]] = {}  # M-of-N hits before an alert exists
        self._counters: dict[Key, Counter] = {}
        self._den_counters: dict[Key, Counter] = {}

    def evaluate(self, families: Families, now: float) -> list[Alert]:
        """Judge every selected series; the alerts that changed state (to firing or
        resolved). Pending alerts that went inactive are dropped here."""
        names, pairs = self.selection.read(families)
        changed: list[Alert] = []
        seen: set[Key] = set()
        for key, value in self._values(families, names, pairs, now):
            seen.add(key)
            if value is not None and self._judge(key, names, value, now):
                changed.append(self.alerts[key])
        changed += self._missing(seen, now)
        if len(self._counters) > len(seen):  # series that went away: their histories too
            self._counters = {k: c for k, c in self._counters.items() if k in seen}
        for key in [k for k, a in self.alerts.items() if a.state == "pending" and not a.active]:
            del self.alerts[key]
        return changed

    def _values(self, families: Families, names: Labels, pairs: Iterator[tuple[Key, float]],
                now: float) -> Iterator[tuple[Key, float | None]]:
        function = self.config.function
        counters = self._counters
        join = self._join(families, names, now)
        for key, raw in pairs:
            value = apply(function, counters, key, raw, now=now, range_=self.range)
            if join is not None and value is not None:
                den = join[1].get(tuple(key[i] for i in join[0]))
                value = None if den is None else ratio(value, den)
            yield key, value

    def _join(self, families: Families, names: Labels, now: float
              ) -> tuple[list[int], dict[Key, float]] | None:
        if self.denominator is None:
            return None
        den_names, pairs = self.denominator.read(families)
        if not set(den_names) <= set(names):
            return [], {}
        values = {}
        for key, raw in pairs:
            value = apply(self.config.function, self._den_counters, key, raw, now=now,
                          range_=self.range)
            if value is not None:
                values[key] = value
        return [names.index(n) for n in den_names], values

    def _judge(self, key: Key, names: Labels, value: float, now: float) -> bool:
        alert = self.alerts.get(key)
        hit = not math.isnan(value) and self.op(value, self.fire)
        if alert is None:
            if not (hit or key in self._candidates) or not self._debounce_new(key, hit):
                return False
            alert = self.alerts[key] = self._new(key, names, now)
        alert.value, alert.missing_since = value, None
        return step(alert, now, self._active(alert, value, hit), self.timing)

    def _active(self, alert: Alert, value: float, hit: bool) -> bool:
        """Hysteresis: active until the value is past `clear`; inactive until past `fire`;
        each switch needs M of the last N evaluations."""
        m, n = self.timing.m, self.timing.n
        signal = (math.isnan(value) or not self.op(value, self.clear)) if alert.active else hit
        if alert.hits.maxlen != n:
            alert.hits = deque(maxlen=n)
        alert.hits.append(signal)
        if sum(alert.hits) >= m:
            alert.hits.clear()
            return not alert.active
        return alert.active

    def _debounce_new(self, key: Key, hit: bool) -> bool:
        m, n = self.timing.m, self.timing.n
        if m == 1:
            return hit
        hits = self._candidates.setdefault(key, deque(maxlen=n))
        hits.append(hit)
        if sum(hits) >= m:
            del self._candidates[key]
            return True
        if not any(hits):
            del self._candidates[key]
        return False

    def _new(self, key: Key, names: Labels, now: float) -> Alert:
        labels = {**{n: v for n, v in zip(names, key, strict=True) if v}, **self.static}
        return Alert(rule=self.name, key=key, labels=labels,
                     fingerprint=fingerprint(self.name, labels), rule_kind="metric",
                     severity=self.config.severity, active_at=now, last_active=now)

    def _missing(self, seen: set[Key], now: float) -> list[Alert]:
        changed = []
        for key, alert in self.alerts.items():
            if key in seen:
                continue
            if alert.missing_since is None:
                alert.missing_since = now
            alert.active = False
            if alert.state == "firing" and now - alert.missing_since >= self.grace:
                alert.state, alert.ends_at = "resolved", now
                changed.append(alert)
        return changed

    def adopt(self, alert: Alert) -> None:
        """An alert restored from the state file resumes as it was."""
        self.alerts[alert.key] = alert
