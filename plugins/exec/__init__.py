"""The local fallback: a command run for alerts (switch a model, restart a unit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent import hookimpl
from agent.components import Collector, Component
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.metrics import Accumulator
from plugins.exec import metrics as m
from plugins.exec.config import ExecConfig

if TYPE_CHECKING:
    from plugins.exec.sink import ExecSink

STATUSES = ("0", "1", "timeout", "error")  # always exported, so rates work from the start
REASONS = ("renewal", "grouped", "resolve", "malformed")


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return ExecConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, ExecConfig)  # noqa: S101 - validated with our model
    from plugins.exec.sink import ExecSink  # noqa: PLC0415

    sink = ExecSink(config, ctx.plugin)
    return [sink, ExecStats(sink, min(5.0, float(config.interval)))]


class ExecStats(Collector):
    blocking = False

    def __init__(self, sink: ExecSink, interval: float) -> None:
        super().__init__("stats")
        self.sink = sink
        self.interval = interval  # `interval` bounds the command's timeout; scrape more often

    async def collect(self, out: Accumulator) -> None:
        for status in {*STATUSES, *self.sink.runs}:
            out.add(m.RUNS, self.sink.runs[status], status=status)
        out.add(m.RUNNING, self.sink.running)
        for reason in REASONS:
            out.add(m.SKIPPED, self.sink.skipped[reason], reason=reason)
