"""Log shipping: files and the journal to file, syslog, MQTT and Loki, redacted, losing nothing."""

from __future__ import annotations

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.logs.config import LogsConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return LogsConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, LogsConfig)  # noqa: S101 - validated with our model
    from plugins.logs.build import components  # noqa: PLC0415 - sqlite only when enabled

    return components(config, ctx)
