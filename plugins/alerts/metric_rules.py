"""A metric rule, compiled once: selection, function, thresholds with hysteresis, timing.

One alert per matching label set. A series that disappears stops being judged: a pending
alert on it is dropped, a firing one resolves once it has been missing for `keep_firing_for`,
two evaluation intervals and a minute, whichever is longest (a restart or a collector's late
tick is not a resolve). A rate over a history shorter than its range judges nothing yet.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Sequence

from agent.metrics import Labels
from agent.readback import Families
from plugins.alerts.config import RuleConfig
from plugins.alerts.matchers import parse_matchers
from plugins.alerts.series import Counter, Key, Selection, Signatures, apply, ratio
from plugins.alerts.state import Alert, Timing, fingerprint, step

# A series absent this long (and two evaluations, and keep_firing_for) resolves its alert: a
# restarted agent's first collections, or a loaded host's late one, are not resolves.
MISSING_GRACE = 60.0
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
        self.grace = max(self.timing.keep_firing_for, 2 * interval, MISSING_GRACE)
        self.range = float(config.range or 0.0)
        self.static = {**config.labels, "alertname": config.name, "severity": config.severity,
                       "host": host}
        self.selection = Selection(config.metric, parse_matchers(config.matchers))
        self.denominator = Selection(config.divide_by, []) if config.divide_by else None
        self.alerts: dict[Key, Alert] = {}
        self._candidates: dict[Key, deque[bool]] = {}  # M-of-N hits before an alert exists
        self._counters: dict[Key, Counter] = {}
        self._den_counters: dict[Key, Counter] = {}
        # A plain value rule: nothing to compute per series, so a quiet pass can stop early.
        self._plain = config.function == "value" and self.denominator is None

    def evaluate(self, families: Families, now: float, sigs: Signatures | None = None
                 ) -> list[Alert]:
        """Judge every selected series; the alerts that changed state (to firing or
        resolved). Pending alerts that went inactive are dropped here."""
        if self._plain and not self.alerts and not self._candidates and \
                self._quiet(families, sigs):
            return []
        names, pairs = self.selection.read(families, sigs)
        alerts = self.alerts
        if not pairs and not alerts:
            return []
        values: Sequence[tuple[Key, float | None]] = pairs
        if self.config.function != "value" or self.denominator is not None:
            values = self._computed(families, names, pairs, now)
        changed: list[Alert] = []
        op, fire, candidates = self.op, self.fire, self._candidates
        for key, value in values:
            # The common case, first: no alert on this series and nothing crossed.
            if value is None or (key not in alerts and key not in candidates
                                 and not op(value, fire)):
                continue
            if self._judge(key, names, value, now):
                changed.append(alerts[key])
        if alerts:
            changed += self._settle(pairs, now)
        return changed

    def _quiet(self, families: Families, sigs: Signatures | None) -> bool:
        """True when no selected value crosses `fire` (the usual case for a rule without
        alerts): judged on the family's parts as they are, without building pairs."""
        found = self.selection.parts(families, sigs)
        if found is None:
            return True
        parts, op, fire = found[1], self.op, self.fire
        for i, key in self.selection.selected:  # noqa: SIM110 - no generator per rule
            if op(parts[i][key], fire):
                return False
        return True

    def _computed(self, families: Families, names: Labels, pairs: list[tuple[Key, float]],
                  now: float) -> list[tuple[Key, float | None]]:
        """Increases, rates and ratios; counter histories of series gone are dropped."""
        function, counters, range_ = self.config.function, self._counters, self.range
        den = self._join(families, names, now)
        out: list[tuple[Key, float | None]] = []
        for key, raw in pairs:
            value = apply(function, counters, key, raw, now=now, range_=range_)
            if den is not None and value is not None:
                under = den(key)
                value = None if under is None else ratio(value, under)
            out.append((key, value))
        if len(counters) > len(pairs):
            seen = {key for key, _ in pairs}
            self._counters = {k: c for k, c in counters.items() if k in seen}
        return out

    def _settle(self, pairs: list[tuple[Key, float]], now: float) -> list[Alert]:
        """Series gone missing, and pending alerts that went inactive (dropped)."""
        changed = self._missing({key for key, _ in pairs}, now)
        for key in [k for k, a in self.alerts.items() if a.state == "pending" and not a.active]:
            del self.alerts[key]
        return changed

    def _join(self, families: Families, names: Labels, now: float
              ) -> Callable[[Key], float | None] | None:
        """The denominator of a numerator series: the series of `divide_by` whose labels
        are the numerator's (its label names a subset), looked up only where needed."""
        if self.denominator is None:
            return None
        found = families.get(self.denominator.metric)
        if found is None or not set(found[0]) <= set(names):
            return lambda _key: None
        positions = [names.index(n) for n in found[0]]
        parts, function, counters = found[1], self.config.function, self._den_counters

        def lookup(key: Key) -> float | None:
            under = tuple(key[i] for i in positions)
            for part in parts:
                if (raw := part.get(under)) is not None:
                    return apply(function, counters, under, raw, now=now, range_=self.range)
            return None

        return lookup

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
