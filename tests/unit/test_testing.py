"""agent.testing, the plugin authors' kit, does what its docstrings promise."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agent import Accumulator, Collector, Event, Monitor, Service, Severity, Sink, gauge
from agent.config import PluginConfig
from agent.testing import (
    classification_window,
    fake_context,
    metrics_of,
    run_collector,
    run_monitor,
    run_sink,
    running,
    wait_for,
)
from agent.window import Window

TEMP = gauge("inferwatch_test_temperature_celsius", "A reading.", "sensor")


class Thermometer(Collector):
    def __init__(self) -> None:
        super().__init__("thermo")
        self.ticks = 0
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def collect(self, out: Accumulator) -> None:
        self.ticks += 1
        out.add(TEMP, 20 + self.ticks, sensor="a")


class AsyncThermometer(Thermometer):
    blocking = False

    def __init__(self) -> None:
        super().__init__()
        self.name = "async-thermo"  # its own snapshot beside the other's

    async def collect(self, out: Accumulator) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        out.add(TEMP, 1.5, sensor="b")


async def test_run_collector_ticks_and_returns_plain_series() -> None:
    ctx = fake_context("thermo")
    thermo = Thermometer()
    metrics = await run_collector(thermo, ctx, ticks=3)
    assert metrics == {("inferwatch_test_temperature_celsius", (("sensor", "a"),)): 23.0}
    assert (thermo.ticks, thermo.started, thermo.stopped) == (3, True, True)
    assert await run_collector(AsyncThermometer(), ctx) == {
        ("inferwatch_test_temperature_celsius", (("sensor", "a"),)): 23.0,
        ("inferwatch_test_temperature_celsius", (("sensor", "b"),)): 1.5}
    assert ctx.metrics_snapshot() == metrics_of(ctx.metrics)


class Alarm(Monitor):
    def __init__(self, ctx: object) -> None:
        super().__init__("alarm")
        self.ctx = ctx

    async def process(self, window: Window) -> Sequence[Event]:
        accuracy = np.mean(window.y_pred[window.labeled] == window.y_true[window.labeled])
        window.results["alarm"] = {"accuracy": accuracy}  # a numpy scalar: made plain
        if accuracy < 0.9:
            return [self.ctx.event("quality.degraded", severity=Severity.WARNING,  # type: ignore[attr-defined]
                                   data={"accuracy": accuracy})]
        return []


async def test_run_monitor_gives_back_plain_events_and_results() -> None:
    ctx = fake_context("alarm")
    window = classification_window("fraud", ["1", "0", "1", "1"], ["1", "0", "0", None],
                                   features={"amount": [1.0, None, 3.0, 4.0],
                                             "country": ["DE", "FR", None, "DE"]})
    events = await run_monitor(Alarm(ctx), ctx, [window])
    assert [e.kind for e in events] == ["quality.degraded"]
    assert type(events[0].data["accuracy"]) is float
    assert events[0].data["accuracy"] == pytest.approx(2 / 3)
    assert type(window.results["alarm"]["accuracy"]) is float
    assert ctx.events == events


def test_classification_window_is_built_as_the_window_stage_builds_it() -> None:
    window = classification_window("m", ["b", "a"], ["a", None], features={
        "x": [1, None], "c": ["u", None]})
    assert window.classes == ("a", "b")
    assert window.y_pred.tolist() == [1, 0]
    assert window.y_true.tolist() == [0, -1]
    assert window.labeled.tolist() == [True, False]
    assert window.features["x"].dtype == np.float64
    assert np.isnan(window.features["x"][1])
    assert window.features["c"].tolist() == ["u", None]
    assert (window.n, window.task, window.positive) == (2, "classification", -1)
    assert classification_window("m", ["0", "1"]).positive == 1


class Collecting(Sink):
    batch_size = 2

    def __init__(self) -> None:
        super().__init__("collect")
        self.batches: list[list[str]] = []

    async def deliver(self, events: Sequence[Event]) -> None:
        self.batches.append([e.kind for e in events])


async def test_run_sink_delivers_in_the_sinks_batch_size() -> None:
    ctx = fake_context("sink")
    sink = Collecting()
    await run_sink(sink, [ctx.event(f"k.{i}") for i in range(5)])
    assert sink.batches == [["k.0", "k.1"], ["k.2", "k.3"], ["k.4"]]


class Ticker(Service):
    def __init__(self, ctx: object, fail: bool = False) -> None:
        super().__init__("ticker")
        self.ctx, self.fail, self.stopped = ctx, fail, False

    async def run(self) -> None:
        if self.fail:
            raise RuntimeError("broken")
        while True:
            self.ctx.emit(self.ctx.event("tick"))  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self.stopped = True


async def test_running_a_service_until_a_condition_holds() -> None:
    ctx = fake_context("ticker")
    async with running(Ticker(ctx)) as ticker:
        await wait_for(lambda: len(ctx.events) >= 3)
    assert ticker.stopped
    assert {e.kind for e in ctx.events} == {"tick"}
    assert ctx.events[0].source == "ticker"


async def test_a_service_that_failed_raises_when_the_block_ends() -> None:
    ctx = fake_context("ticker")
    with pytest.raises(RuntimeError, match="broken"):
        async with running(Ticker(ctx, fail=True)):
            await asyncio.sleep(0)


async def test_wait_for_times_out() -> None:
    with pytest.raises(TimeoutError):
        await wait_for(lambda: False, timeout=0.05)


def test_the_fake_context_keeps_what_a_plugin_hands_it(tmp_path: Path) -> None:
    ctx = fake_context("p", PluginConfig(interval=2.0), state_root=tmp_path)  # type: ignore[arg-type]
    assert ctx.emit(ctx.event("x", data={"n": np.int64(3)}))
    assert type(ctx.events[0].data["n"]) is int
    window = classification_window("m", ["1"])
    ctx.publish(window)
    assert ctx.windows == [window]
    result = ctx.submit([{"model": "m", "request_id": "r", "prediction": 1}])
    assert (result.accepted, ctx.submitted) == (1, [{"model": "m", "request_id": "r",
                                                     "prediction": 1}])
    assert ctx.state_dir() == tmp_path / "plugins" / "p"
    assert ctx.config.interval == 2.0


def test_a_receiver_judges_what_is_submitted() -> None:
    ctx = fake_context(receiver=lambda records: ["no_model" for _ in records])
    result = ctx.submit([b"{}"])
    assert (result.accepted, dict(result.reasons)) == (0, {"no_model": 1})
    assert ctx.submitted == []
