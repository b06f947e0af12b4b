"""Stopping a sink: what is queued for it is delivered first, handed over, or counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agent.bus import EventBus
from agent.components import Sink
from agent.config import Duration, PluginConfig
from agent.metrics import PluginMetrics
from agent.model import Event
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Backoff, Supervised

SETTINGS = PluginConfig(interval=Duration(1.0), timeout=Duration(1.0))


class Recorder(Sink):
    """Takes a batch per `delay` seconds (a slow disk); `stuck` makes it never finish one."""

    batch_size = 100
    queue_size = 100_000

    def __init__(self, delay: float = 0.001, stuck: bool = False) -> None:
        super().__init__("out")
        self.delay, self.stuck, self.got = delay, stuck, []

    async def deliver(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(3600 if self.stuck else self.delay)
        self.got.extend(e.data["n"] for e in events)


def _dropped(metrics: SelfMetrics) -> float:
    return metrics.registry.get_sample_value("inferwatch_events_dropped_total",
                                             {"reason": "stopped"}) or 0.0


async def _setup(sink: Recorder, count: int) -> tuple[EventBus, SelfMetrics, Supervised]:
    metrics = SelfMetrics()
    bus = EventBus(100_000, metrics)
    sup = _supervise(bus, metrics, sink)
    sup.launch()
    for n in range(count):  # one synchronous burst: nothing has reached the sink yet
        bus.emit(Event(kind="k", source="s", host="h", data={"n": n}))
    task = asyncio.create_task(bus.run())
    await bus.drain(5)
    task.cancel()
    return bus, metrics, sup


def _supervise(bus: EventBus, metrics: SelfMetrics, sink: Recorder) -> Supervised:
    return Supervised("p", sink, SETTINGS, metrics=metrics, store=PluginMetrics("p", 10),
                      bus=bus, host_id="h", backoff=Backoff(0.01, 0.05))


async def test_stop_delivers_what_is_queued_before_it_cancels() -> None:
    sink = Recorder()
    _, metrics, sup = await _setup(sink, 6000)
    assert await sup.stop(10) == []
    assert sink.got == list(range(6000))
    assert _dropped(metrics) == 0


async def test_what_a_sink_cannot_take_in_time_is_counted_with_a_reason() -> None:
    _, metrics, sup = await _setup(Recorder(stuck=True), 500)
    await sup.stop(0.2)
    assert _dropped(metrics) == 500


async def test_a_reload_hands_the_queue_and_the_unsent_batch_to_the_new_sink() -> None:
    bus, metrics, old = await _setup(Recorder(stuck=True), 500)
    unsent = await old.stop(0.2, keep_queue=True)
    assert [e.data["n"] for e in unsent] == list(range(100))  # the batch it was stuck on
    bus.emit(Event(kind="k", source="s", host="h", data={"n": 500}))  # during the reload
    task = asyncio.create_task(bus.run())
    await bus.drain(5)
    sink = Recorder()
    new = _supervise(bus, metrics, sink)
    new.adopt(unsent)
    new.launch()
    assert await new.stop(10) == []
    task.cancel()
    assert sink.got == list(range(501))
    assert _dropped(metrics) == 0
