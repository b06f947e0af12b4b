"""The budget controller with a fake clock, CPU and RSS: when it slows which collector,
and when it gives the time back."""

from __future__ import annotations

import itertools

from agent.budget import MAX_STRETCH, SUSTAIN, BudgetController
from agent.bus import EventBus
from agent.components import Collector
from agent.config import AgentSection, Duration, PluginConfig
from agent.metrics import Accumulator, PluginMetrics
from agent.model import Event
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised


class Idle(Collector):
    def collect(self, out: Accumulator) -> None:
        pass


class Rig:
    def __init__(self, cpu_percent: float = 10, rss_bytes: int = 0, rss: int = 100) -> None:
        self.settings = AgentSection(host_id="h", cpu_percent=cpu_percent, rss_bytes=rss_bytes,
                                     budget_period=Duration(1.0))
        self.metrics = SelfMetrics()
        self.now, self.cpu, self.rss_now = 0.0, 0.0, rss
        self.events: list[Event] = []
        bus = EventBus(10, self.metrics)
        self.sups = {name: Supervised(name, Idle("c"), _config(), metrics=self.metrics,
                                      store=PluginMetrics(name, 10), bus=bus, host_id="h")
                     for name in ("gpu", "host", "cheap")}
        self.budget = BudgetController(
            self.settings, self.metrics, lambda: list(self.sups.values()), self._emit,
            cpu=lambda: self.cpu, rss=lambda: self.rss_now, clock=lambda: self.now)

    def _emit(self, event: Event) -> bool:
        self.events.append(event)
        return True

    def periods(self, n: int, cpu_percent: float, costs: dict[str, float],
                rss_step: int = 0) -> None:
        """n periods of one second, at this CPU use, shared among collectors as given; the
        RSS grows by rss_step in each."""
        for _ in range(n):
            self.now += 1
            self.cpu += cpu_percent / 100
            self.rss_now += rss_step
            for name, cost in costs.items():
                self.sups[name].cpu_seconds += cost
            self.budget.step()

    def stretch(self) -> dict[str, int]:
        return {n: s.stretch for n, s in self.sups.items()}

    def exceeded(self, resource: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "inferwatch_agent_budget_exceeded", {"resource": resource})


def _config() -> PluginConfig:
    # Runs in every period, even 16 times stretched: each period's costs are its own runs.
    return PluginConfig(interval=Duration(1 / MAX_STRETCH))


async def test_one_busy_period_in_a_quiet_window_changes_nothing() -> None:
    rig = Rig(cpu_percent=10)
    rig.periods(1, 25, {"gpu": 0.25})
    rig.periods(SUSTAIN * 3, 2, {})  # no window of SUSTAIN periods averages over 10%
    assert rig.stretch() == {"gpu": 1, "host": 1, "cheap": 1}
    assert rig.events == []
    assert rig.exceeded("cpu") is None


async def test_sustained_overuse_slows_the_costliest_collector_first() -> None:
    rig = Rig(cpu_percent=10)
    rig.periods(SUSTAIN, 30, {"gpu": 0.2, "host": 0.05, "cheap": 0.001})
    assert rig.stretch() == {"gpu": 2, "host": 1, "cheap": 1}
    assert rig.exceeded("cpu") == 1
    (event,) = rig.events
    assert event.kind == "agent.budget_exceeded"
    assert event.data["plugin"] == "gpu"
    assert event.data["over"] == ["cpu"]
    assert event.data["cpu_percent"] == 30.0
    assert event.data["cpu_budget_percent"] == 10
    # Still over: the GPU collector costs less now, so host is the costliest.
    rig.periods(SUSTAIN, 20, {"gpu": 0.02, "host": 0.05})
    assert rig.stretch() == {"gpu": 2, "host": 2, "cheap": 1}


async def test_the_stretch_is_capped() -> None:
    rig = Rig()
    rig.periods(SUSTAIN * 10, 50, {"gpu": 0.4})
    assert rig.stretch()["gpu"] == MAX_STRETCH
    assert rig.stretch()["host"] == 1  # it cost nothing: slowing it would not help


async def test_between_half_and_the_whole_budget_the_stretch_holds() -> None:
    rig = Rig(cpu_percent=10)
    rig.periods(SUSTAIN, 30, {"gpu": 0.2})
    rig.periods(SUSTAIN * 5, 7, {"gpu": 0.05})  # under budget, but not by half
    assert rig.stretch()["gpu"] == 2
    assert rig.exceeded("cpu") == 1


async def test_well_under_budget_intervals_are_restored_step_by_step() -> None:
    rig = Rig(cpu_percent=10)
    rig.periods(SUSTAIN * 2, 30, {"gpu": 0.3})
    assert rig.stretch()["gpu"] == 4
    rig.periods(SUSTAIN, 2, {})
    assert rig.stretch()["gpu"] == 2
    assert rig.exceeded("cpu") == 1
    rig.periods(SUSTAIN, 2, {})
    assert rig.stretch()["gpu"] == 1
    assert rig.exceeded("cpu") == 0
    assert [e.kind for e in rig.events][-1] == "agent.budget_restored"


MiB = 1 << 20


def rss_run(rig: Rig, growths: list[int]) -> list[tuple[int, int]]:
    """One period per growth (RSS change, bytes): (host's, gpu's stretch) after each."""
    found = []
    for growth in growths:
        rig.periods(1, 1, {"host": 0.01, "gpu": 0.001}, rss_step=growth)
        found.append((rig.stretch()["host"], rig.stretch()["gpu"]))
    return found


async def test_rss_growing_over_budget_stretches_and_relaxes_once_it_stops() -> None:
    """Issue 17: an RSS over the budget stretched every collector to 16x for ever. Now:
    stretch while it grows over the budget (a decision per SUSTAIN periods), relax one step
    per window once it stops growing although it stays over (slower collections cannot give
    memory back), and stretch again when it grows again."""
    rig = Rig(cpu_percent=0, rss_bytes=100 * MiB, rss=101 * MiB)
    growing = rss_run(rig, [2 * MiB] * 15)
    assert [h for h, _ in growing] == [1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16, 16]
    assert growing[-1] == (16, 2)  # host at the cap: the next costliest
    flat = rss_run(rig, [0] * 15)
    assert flat == ([(16, 2)] * 2 + [(8, 2)] * 3 + [(4, 2)] * 3 + [(2, 2)] * 3
                    + [(2, 1)] * 3 + [(1, 1)])
    assert rig.rss_now == 131 * MiB  # still over: relaxed all the same
    (restored,) = [e for e in rig.events if e.kind == "agent.budget_restored"]
    assert restored.data["rss_over_budget"] is True
    assert restored.data["rss_bytes"] == 131 * MiB
    assert rig.exceeded("rss") == 1  # over the budget all along: the gauge says so
    assert rig.exceeded("cpu") == 0
    again = rss_run(rig, [2 * MiB] * 3)
    assert again == [(1, 1), (1, 1), (2, 1)]


async def test_rss_over_budget_but_flat_slows_nothing() -> None:
    rig = Rig(cpu_percent=0, rss_bytes=100 * MiB, rss=150 * MiB)
    rss_run(rig, [4096] * 15)  # a page a period: noise, not growth
    assert rig.stretch() == {"gpu": 1, "host": 1, "cheap": 1}
    assert rig.events == []
    assert rig.exceeded("rss") == 1


async def test_rss_crossing_the_budget_then_falling() -> None:
    rig = Rig(cpu_percent=0, rss_bytes=100 * MiB, rss=99 * MiB)
    rising = rss_run(rig, [MiB] * 9)
    # Over throughout a window from 101 MiB (after the fourth period); the window that
    # ends one period into the fall still grew across it.
    assert [h for h, _ in rising] == [1, 1, 1, 2, 2, 2, 4, 4, 4]
    falling = rss_run(rig, [-MiB] * 9)
    assert [h for h, _ in falling] == [8, 8, 8, 4, 4, 4, 2, 2, 2]
    rss_run(rig, [-MiB] * 3)  # under the budget now
    assert rig.stretch()["host"] == 1
    assert rig.exceeded("rss") == 0
    assert rig.events[-1].kind == "agent.budget_restored"
    assert rig.events[-1].data["rss_over_budget"] is False


async def test_a_lifted_rss_budget_clears_its_gauge() -> None:
    rig = Rig(cpu_percent=0, rss_bytes=100 * MiB, rss=150 * MiB)
    rss_run(rig, [0] * SUSTAIN)
    assert rig.exceeded("rss") == 1
    rig.budget.settings = AgentSection(host_id="h", cpu_percent=5, rss_bytes=0,
                                       budget_period=Duration(1.0))  # a reload lifts it
    rss_run(rig, [0] * SUSTAIN)
    assert rig.exceeded("rss") == 0


async def test_the_cpu_rule_still_holds_between_half_and_the_whole_budget() -> None:
    """RSS stopped growing, but the CPU is over half its budget: the CPU rule holds."""
    rig = Rig(cpu_percent=10, rss_bytes=100 * MiB, rss=101 * MiB)
    rig.periods(SUSTAIN, 7, {"host": 0.05}, rss_step=MiB)
    assert rig.stretch()["host"] == 2
    assert rig.events[0].data["over"] == ["rss"]
    rig.periods(SUSTAIN * 4, 7, {"host": 0.05})
    assert rig.stretch()["host"] == 2
    rig.periods(SUSTAIN, 2, {})
    assert rig.stretch()["host"] == 1


async def test_a_collector_slower_than_the_window_is_not_restored_between_its_runs() -> None:
    """Judged on windows shorter than a stretched interval, most windows hold no collection and
    look idle: the controller restored, overshot and stretched again, for ever."""
    rig = Rig(cpu_percent=10)
    gpu = rig.sups["gpu"]
    gpu.settings = PluginConfig(interval=Duration(4.0))
    history = []
    for second in range(400):  # 1.2 s of CPU per collection: 30%, 15%, 7.5% at stretch 1, 2, 4
        burst = second % int(4 * gpu.stretch) == 0
        rig.periods(1, 120 if burst else 0, {"gpu": 1.2} if burst else {})
        history.append(gpu.stretch)
    assert history[-1] == 4
    assert max(history) == 4
    changes = sum(a != b for a, b in itertools.pairwise(history))
    assert changes == 2  # 1 -> 2 -> 4, then it holds
