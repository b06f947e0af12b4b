"""The supervisor in-process: failures are contained, counted, retried; nothing leaks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus import EventBus
from agent.components import Collector, Monitor, Service, Sink
from agent.config import Duration, PluginConfig
from agent.errors import NotReadyError, PermanentError
from agent.metrics import Accumulator, PluginMetrics, gauge
from agent.model import Event
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Backoff, Supervised
from agent.window import Window

FAST = PluginConfig(interval=Duration(0.02), timeout=Duration(0.02))
TICK = gauge("inferwatch_test_tick", "Tick.")


async def _until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def _sample(metrics: SelfMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class Env:
    def __init__(self) -> None:
        self.metrics = SelfMetrics()
        self.bus = EventBus(100, self.metrics)
        self.store = PluginMetrics("p", 100)
        self.events: asyncio.Queue[Event] = self.bus.subscribe("test", 100)
        self.bus_task = asyncio.create_task(self.bus.run())

    def supervise(self, component, settings: PluginConfig = FAST) -> Supervised:
        return Supervised("p", component, settings, metrics=self.metrics, store=self.store,
                          bus=self.bus, host_id="h", backoff=Backoff(0.01, 0.05),
                          start_timeout=1.0)

    def errors(self, reason: str, component: str = "c") -> float:
        return _sample(self.metrics, "inferwatch_plugin_errors_total", plugin="p",
                       component=component, reason=reason)


@pytest.fixture
async def env():
    e = Env()
    yield e
    e.bus_task.cancel()


class Flaky(Collector):
    def __init__(self, failures: int) -> None:
        super().__init__("c")
        self.failures, self.calls, self.starts, self.stops = failures, 0, 0, 0

    async def start(self) -> None:
        self.starts += 1

    async def stop(self) -> None:
        self.stops += 1

    def collect(self, out: Accumulator) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("boom")
        out.add(TICK, self.calls)


async def test_failures_are_counted_and_restarted_with_backoff(env: Env) -> None:
    flaky = Flaky(failures=3)
    sup = env.supervise(flaky)
    sup.launch()
    await _until(lambda: sup.up)
    assert env.errors("exception") == 3
    assert flaky.starts == 4
    assert flaky.stops == 3
    assert _sample(env.metrics, "inferwatch_plugin_restarts_total", plugin="p",
                   component="c") == 3
    event = env.events.get_nowait()
    assert (event.kind, event.source, event.attributes) == (
        "plugin.failed", "p", {"component": "c", "reason": "exception"})
    assert env.events.empty(), "one plugin.failed event per failure episode, not per retry"
    assert env.store.items()[0][1] == {(): 4.0}
    await sup.stop(1)
    assert env.store.items() == []
    assert _sample(env.metrics, "inferwatch_plugin_up", plugin="p", component="c") == 0


class Hanging(Collector):
    def __init__(self) -> None:
        super().__init__("c")
        self.release = threading.Event()
        self.calls = 0

    def collect(self, out: Accumulator) -> None:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(10)
        out.add(TICK, self.calls)


async def test_hung_call_times_out_skips_ticks_and_never_overlaps(env: Env) -> None:
    hanging = Hanging()
    sup = env.supervise(hanging)
    sup.launch()
    await _until(lambda: env.errors("timeout") == 1)
    await _until(lambda: _sample(env.metrics, "inferwatch_collector_skipped_ticks_total",
                                 plugin="p", component="c") >= 3)
    assert hanging.calls == 1, "no second call while the first is still running"
    assert not sup.up
    hanging.release.set()
    await _until(lambda: sup.up)
    assert hanging.calls >= 2
    await sup.stop(1)


async def test_loop_stays_responsive_while_a_collector_hangs(env: Env) -> None:
    hanging, flaky = Hanging(), Flaky(failures=0)
    flaky.name = "n"
    sups = [env.supervise(hanging), env.supervise(flaky)]
    for sup in sups:
        sup.launch()
    await _until(lambda: env.errors("timeout") == 1)
    calls = flaky.calls
    await _until(lambda: flaky.calls >= calls + 10, timeout=1.0)  # 20 ms cadence holds
    hanging.release.set()
    for sup in sups:
        await sup.stop(1)


class Starter(Collector):
    def __init__(self, error: Exception | None, times: int) -> None:
        super().__init__("c")
        self.error, self.times, self.starts = error, times, 0

    async def start(self) -> None:
        self.starts += 1
        if self.error is not None and self.starts <= self.times:
            raise self.error

    def collect(self, out: Accumulator) -> None:
        out.add(TICK, 1)


async def test_not_ready_is_retried(env: Env) -> None:
    sup = env.supervise(Starter(NotReadyError("device not up yet"), times=2))
    sup.launch()
    await _until(lambda: sup.up)
    assert env.errors("start") == 2
    await sup.stop(1)


async def test_permanent_error_disables_without_retry(env: Env) -> None:
    starter = Starter(PermanentError("no driver"), times=99)
    sup = env.supervise(starter)
    sup.launch()
    await _until(lambda: sup.task is not None and sup.task.done())
    assert starter.starts == 1
    assert env.errors("start") == 1
    assert sup.started.is_set()
    await sup.stop(1)


class FlakySink(Sink):
    batch_size = 7

    def __init__(self) -> None:
        super().__init__("c")
        self.delivered: list[str] = []
        self.attempts = 0

    async def deliver(self, events: Sequence[Event]) -> None:
        self.attempts += 1
        if self.attempts % 3 == 1:
            raise ConnectionError("broker away")
        self.delivered.extend(e.id for e in events)


async def test_sink_retries_failed_batches_in_order(env: Env) -> None:
    sink = FlakySink()
    sup = env.supervise(sink)
    sup.launch()
    await sup.started.wait()
    sent = [Event(kind="test", source="t", host="h") for _ in range(50)]
    for event in sent:
        assert env.bus.emit(event)
    await _until(lambda: len(sink.delivered) >= 50)
    assert sink.delivered == [e.id for e in sent]
    assert env.errors("exception") >= 1
    await sup.stop(1)


class Quitter(Service):
    def __init__(self) -> None:
        super().__init__("c")
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1


async def test_service_that_returns_is_restarted(env: Env) -> None:
    quitter = Quitter()
    sup = env.supervise(quitter)
    sup.launch()
    await _until(lambda: quitter.runs >= 3)
    await sup.stop(1)


async def test_stop_is_idempotent_and_safe_without_start(env: Env) -> None:
    sup = env.supervise(Flaky(0))
    await sup.stop(1)
    sup.launch()
    await sup.stop(1)
    await sup.stop(1)
    assert sup.task is not None
    assert sup.task.cancelled()


async def test_events_from_threads_reach_the_bus(env: Env) -> None:
    event = Event(kind="gpu.xid", source="t", host="h")
    await asyncio.to_thread(env.bus.emit, event)
    assert (await asyncio.wait_for(env.events.get(), 1)).id == event.id


async def test_full_bus_drops_and_counts() -> None:
    metrics = SelfMetrics()
    bus = EventBus(2, metrics)
    results = [bus.emit(Event(kind="k", source="s", host="h")) for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert _sample(metrics, "inferwatch_events_dropped_total", reason="queue_full") == 3


@given(st.floats(0.001, 10), st.floats(1, 100), st.integers(0, 40))
def test_backoff_stays_within_equal_jitter_bounds(base: float, cap: float, n: int) -> None:
    backoff = Backoff(base, cap)
    for attempt in range(n + 1):
        ceiling = min(cap, base * 2**attempt)
        assert ceiling / 2 <= backoff.next() <= ceiling
    backoff.reset()
    assert min(base, cap) / 2 <= backoff.next() <= min(base, cap)


class Positives(Monitor):
    """Emits one event per window with a positive prediction: a monitor in miniature."""

    def __init__(self) -> None:
        super().__init__("c")
        self.seen = 0

    async def process(self, window: Window) -> Sequence[Event]:
        self.seen += window.rows
        positives = int(np.count_nonzero(window.y_pred == window.positive))
        return [Event(kind="quality.degraded", source="p", host="h",
                      data={"positives": positives})] if positives else []


async def test_monitor_turns_batches_into_events(env: Env) -> None:
    monitor = Positives()
    sup = env.supervise(monitor)
    sup.launch()
    await sup.started.wait()
    assert sup.inbox is not None
    window = Window(model="m", model_version="", spec="1m", start=0, end=60,
                    task="classification", n=3, y_pred=np.array([1, 0, 1]),
                    y_true=np.array([1, -1, -1]), classes=("0", "1"), positive=1)
    await sup.inbox.put(window)
    event = await asyncio.wait_for(env.events.get(), 2)
    assert (event.kind, event.data) == ("quality.degraded", {"positives": 2})
    assert monitor.seen == 3
    await sup.stop(1)
