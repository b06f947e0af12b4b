"""The alert engine: metric rules over the agent's own series and event rules over its
events, with hysteresis, durable state, and `alert.firing` / `alert.resolved` events for
the sinks (Alertmanager, webhook, MQTT, exec) to deliver."""

from __future__ import annotations

import argparse

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.alerts.config import AlertsConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return AlertsConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    from plugins.alerts.service import AlertEventSink, AlertService, Runner  # noqa: PLC0415

    assert isinstance(config, AlertsConfig)  # noqa: S101 - validated with our model
    runner = Runner(config, ctx)
    components: list[Component] = [AlertService(runner)]
    if runner.engine.event_rules:
        components.append(AlertEventSink(runner))
    return components


@hookimpl
def inferwatch_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from plugins.alerts.command import add_command  # noqa: PLC0415 - only when asked

    add_command(subparsers)
