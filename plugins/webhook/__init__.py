"""Events POSTed to an HTTP endpoint as signed JSON, through the sink's own durable outbox."""

from __future__ import annotations

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.webhook.config import WebhookConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return WebhookConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, WebhookConfig)  # noqa: S101 - validated with our model
    from plugins.webhook.sink import WebhookSink  # noqa: PLC0415 - aiohttp only when enabled

    return [WebhookSink(config)]
