"""A sink that writes every event to the agent's log: events in journald with no broker at all."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import structlog

from agent import hookimpl
from agent.components import Component, Sink
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.model import Event

log = structlog.get_logger("inferwatch.events")


class EventLogConfig(PluginConfig):
    enabled: bool = False


class EventLogSink(Sink):
    def __init__(self) -> None:
        super().__init__("log")

    async def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            log.info("event", envelope=msgspec.to_builtins(event))


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return EventLogConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    return [EventLogSink()]
