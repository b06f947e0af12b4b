"""The agent keeps to its own budget: it measures itself and slows its costliest collectors.

Every `budget_period` the agent reads its CPU time and RSS, and judges the last SUSTAIN
periods as one window (at least twice the longest stretched interval). It doubles the
interval of the collector that cost the most CPU since the last decision (up to
MAX_STRETCH), logs why and emits `agent.budget_exceeded`, when
- CPU: the window's average is over the budget;
- RSS: it is over the budget throughout the window *and still growing* (by more than
  RSS_GROWTH of the budget across it). Slower collections slow what allocates; they cannot
  give memory back, and Python rarely returns it, so an RSS that stays over the budget but
  has stopped growing is no reason to keep collectors slow: that is what stretched every
  collector to 16x for ever.
It halves the most stretched interval again, one step per window, once the CPU is well
under budget (below half of it, so undoing one doubling stays within budget) and the RSS is
not growing over its budget; between the two it holds, so it does not oscillate. Once all
are back it emits `agent.budget_restored`. Only collectors are slowed: services, monitors
and sinks serve input that arrives whether the agent likes it or not.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import structlog

from agent.config import AgentSection
from agent.model import Event, Severity
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised

SUSTAIN = 3  # periods in a row before acting, either way
MAX_STRETCH = 16
RESTORE_CPU = 0.5  # of the budget: "well under"
RSS_GROWTH = 0.005  # of the RSS budget, across a window: growing (less is noise)
PAGE = 4096
HISTORY = 4096  # samples: 2 x 16 x a 1h interval at a 30s period, with room

log = structlog.get_logger("inferwatch")


def own_rss() -> int:
    """Resident bytes of this process, from /proc/self/statm (cheap: no psutil)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _interval(sup: Supervised) -> float:
    """A collector's effective interval, as its supervisor computes it."""
    base = getattr(sup.component, "interval", None) or sup.settings.interval
    return float(base) * sup.stretch


class BudgetController:
    def __init__(self, settings: AgentSection, metrics: SelfMetrics,
                 collectors: Callable[[], list[Supervised]], emit: Callable[[Event], bool],
                 *, cpu: Callable[[], float] = time.process_time,
                 rss: Callable[[], int] = own_rss,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.metrics = settings, metrics
        self.collectors, self.emit = collectors, emit
        self.cpu, self.rss, self.clock = cpu, rss, clock
        # The last SUSTAIN periods, judged as one window: collections come in bursts, so a
        # single period is often all burst or all quiet.
        self._window: deque[tuple[float, float, int]] = deque(maxlen=HISTORY)
        self._window.append((clock(), cpu(), rss()))
        self._costs: dict[int, float] = {}
        self.exceeded = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.budget_period)
            self.step()

    def step(self) -> None:
        """One measurement; acts on the last SUSTAIN periods, judged as one window."""
        self._window.append((self.clock(), self.cpu(), self.rss()))
        span = self._span()
        while len(self._window) > SUSTAIN + 1 and self._window[-1][0] - self._window[1][0] >= span:
            self._window.popleft()
        if len(self._window) <= SUSTAIN or self._window[-1][0] - self._window[0][0] < span:
            return
        cpu_percent, rss, growth = self._usage_now()
        self._mark_rss(rss)
        if over := self._over(cpu_percent, rss, growth):
            self._stretch(self._period_costs(), over, cpu_percent, rss)
        elif self.exceeded and self._cpu_well_under(cpu_percent):
            self._period_costs()  # the next decision weighs what came after this one
            self._restore(cpu_percent, rss)
        else:
            return
        self._window = deque([self._window[-1]], maxlen=HISTORY)  # judge the change afresh

    def _usage_now(self) -> tuple[float, int, int]:
        """The window's CPU percent, its lowest RSS (over only if over throughout), and how
        much the RSS grew across it."""
        (t0, cpu0, rss0), (t1, cpu1, rss1) = self._window[0], self._window[-1]
        cpu_percent = (cpu1 - cpu0) / max(t1 - t0, 1e-9) * 100
        rss = min(r for _, _, r in list(self._window)[1:])
        return cpu_percent, rss, rss1 - rss0

    def _span(self) -> float:
        """Seconds a window must cover: twice the longest stretched interval. A shorter window
        often holds none of that collector's runs, looks idle, and restores it; the next
        window holds a run and stretches it again, for ever."""
        return 2 * max((_interval(s) for s in self.collectors() if s.stretch > 1), default=0.0)

    def _over(self, cpu_percent: float, rss: int, growth: int) -> list[str]:
        """What calls for a slow-down: CPU over budget; RSS over budget and still growing."""
        budget = self.settings
        growing = growth > max(budget.rss_bytes * RSS_GROWTH, PAGE)
        return ([*(["cpu"] if budget.cpu_percent and cpu_percent > budget.cpu_percent else []),
                 *(["rss"] if budget.rss_bytes and rss > budget.rss_bytes and growing
                   else [])])

    def _cpu_well_under(self, cpu_percent: float) -> bool:
        budget = self.settings
        return not budget.cpu_percent or cpu_percent < budget.cpu_percent * RESTORE_CPU

    def _mark_rss(self, rss: int) -> None:
        """inferwatch_agent_budget_exceeded{resource="rss"}: over the budget or not, as judged
        now (whether or not that slows anything); 0 once a reload lifts the budget."""
        budget = self.settings.rss_bytes
        self.metrics.budget_exceeded.labels("rss").set(int(bool(budget) and rss > budget))

    def _period_costs(self) -> dict[Supervised, float]:
        """CPU each collector spent since the last decision (all of it, for one seen first)."""
        costs, seen = {}, {}
        for sup in self.collectors():
            seen[id(sup)] = sup.cpu_seconds
            costs[sup] = sup.cpu_seconds - self._costs.get(id(sup), 0.0)
        self._costs = seen
        return costs

    def _stretch(self, costs: dict[Supervised, float], over: list[str], cpu_percent: float,
                 rss: int) -> None:
        self.exceeded = True
        if "cpu" in over:
            self.metrics.budget_exceeded.labels("cpu").set(1)
        room = {s: c for s, c in costs.items() if s.stretch < MAX_STRETCH and c > 0}
        if not room:
            log.warning("agent over its budget; no collector left to slow down",
                        over=over, **self._usage(cpu_percent, rss))
            return
        costliest = max(room, key=room.__getitem__)
        costliest.stretch *= 2
        data = {"over": over, "plugin": costliest.plugin, "component": costliest.component.name,
                "stretch": costliest.stretch, "cpu_seconds": round(room[costliest], 3),
                **self._usage(cpu_percent, rss)}
        log.warning("agent over its budget; slowing its costliest collector", **data)
        self.emit(self._event("agent.budget_exceeded", Severity.WARNING, data))

    def _restore(self, cpu_percent: float, rss: int) -> None:
        stretched = [s for s in self.collectors() if s.stretch > 1]
        if stretched:
            most = max(stretched, key=lambda s: s.stretch)
            most.stretch //= 2
            log.info("agent under its budget; speeding a collector back up",
                     plugin=most.plugin, component=most.component.name, stretch=most.stretch)
        if any(s.stretch > 1 for s in self.collectors()):
            return
        self.exceeded = False
        self.metrics.budget_exceeded.labels("cpu").set(0)
        rss_over = bool(self.settings.rss_bytes) and rss > self.settings.rss_bytes
        data = {**self._usage(cpu_percent, rss), "rss_over_budget": rss_over}
        log.info("agent back under its budget; every collection interval restored" if not
                 rss_over else "agent's RSS over its budget but no longer growing; every "
                 "collection interval restored", **data)
        self.emit(self._event("agent.budget_restored", Severity.INFO, data))

    def _usage(self, cpu_percent: float, rss: int) -> dict[str, object]:
        return {"cpu_percent": round(cpu_percent, 2), "cpu_budget_percent":
                self.settings.cpu_percent, "rss_bytes": rss,
                "rss_budget_bytes": self.settings.rss_bytes}

    def _event(self, kind: str, severity: Severity, data: dict[str, object]) -> Event:
        return Event(kind=kind, source="agent", host=self.settings.host_id, severity=severity,
                     data=data)
