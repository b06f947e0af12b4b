"""Events POSTed to an HTTP endpoint as signed JSON, through the sink's own durable outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent import hookimpl
from agent.components import Collector, Component
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.metrics import Accumulator, counter
from plugins.webhook.config import WebhookConfig

if TYPE_CHECKING:
    from plugins.webhook.sink import WebhookSink

SKIPPED = counter("inferwatch_webhook_skipped_total",
                  'Events acknowledged without a request under format = "alertmanager", by '
                  "reason (renewal, fallback_elsewhere, not_alert, malformed).", "reason")
REASONS = ("renewal", "fallback_elsewhere", "not_alert", "malformed")


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return WebhookConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, WebhookConfig)  # noqa: S101 - validated with our model
    from plugins.webhook.sink import WebhookSink  # noqa: PLC0415 - aiohttp only when enabled

    sink = WebhookSink(config, ctx.plugin)
    if config.format != "alertmanager":
        return [sink]
    return [sink, WebhookStats(sink)]


class WebhookStats(Collector):
    blocking = False

    def __init__(self, sink: WebhookSink) -> None:
        super().__init__("stats")
        self.sink = sink

    async def collect(self, out: Accumulator) -> None:
        for reason in REASONS:
            out.add(SKIPPED, self.sink.skipped[reason], reason=reason)
