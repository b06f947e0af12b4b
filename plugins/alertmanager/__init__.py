"""Alerts to Prometheus Alertmanager (API v2), renewed while they fire, resolved explicitly."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from agent import hookimpl
from agent.alertroute import fallback_event
from agent.components import Collector, Component, Service
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.metrics import Accumulator
from plugins.alertmanager import metrics as m
from plugins.alertmanager.config import AlertmanagerConfig

if TYPE_CHECKING:
    from plugins.alertmanager.sender import Sender
    from plugins.alertmanager.sink import AlertmanagerSink, AlertStore


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return AlertmanagerConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, AlertmanagerConfig)  # noqa: S101 - validated with our model
    from plugins.alertmanager.held import HeldAlerts  # noqa: PLC0415
    from plugins.alertmanager.sender import Sender  # noqa: PLC0415 - aiohttp only when enabled
    from plugins.alertmanager.sink import AlertmanagerSink, AlertStore  # noqa: PLC0415

    path = ctx.state_root / "plugins" / ctx.plugin / "held.db"
    store = AlertStore(HeldAlerts(path, list(config.urls), config.max_alerts))
    sink = AlertmanagerSink(config, store, ctx.plugin)
    senders = [Sender(config, store, url, i) for i, url in enumerate(config.urls)]
    out: list[Component] = [sink, *senders, AlertmanagerStats(sink, senders)]
    if config.fallback:
        out.append(FallbackWatch(config, store, ctx))
    return out


class AlertmanagerStats(Collector):
    blocking = False

    def __init__(self, sink: AlertmanagerSink, senders: list[Sender]) -> None:
        super().__init__("stats")
        self.sink, self.senders = sink, senders

    async def collect(self, out: Accumulator) -> None:
        held = self.sink.store.held
        for state, count in held.counts().items():
            out.add(m.HELD, count, state=state)
        out.add(m.MALFORMED, self.sink.malformed)
        out.add(m.DROPPED, held.dropped)
        out.add(m.FALLBACKS, held.fallbacks)
        out.add(m.EXPIRED, held.expired)
        now = time.time()
        for sender in self.senders:
            url = sender.url
            count, oldest = held.pending(sender.key)
            out.add(m.UP, 1 if sender.up else 0, url=url)
            out.add(m.PENDING, count, url=url)
            out.add(m.OLDEST, 0.0 if oldest is None else max(0.0, now - oldest), url=url)
            out.add(m.SENT, sender.sent, url=url)
            for reason in ("unreachable", "timeout", "tls", "redirect", "http_4xx", "http_5xx",
                           "rejected"):
                out.add(m.ERRORS, sender.errors[reason], url=url, reason=reason)


class FallbackWatch(Service):
    """Hands the alert changes no Alertmanager took within `fallback_after` to the
    fallback sink, as `alert.fallback` events (each change once)."""

    def __init__(self, config: AlertmanagerConfig, store: AlertStore,
                 ctx: PluginContext) -> None:
        super().__init__("fallback")
        self.config, self.store, self.ctx = config, store, ctx

    async def run(self) -> None:
        tick = min(1.0, float(self.config.fallback_after) / 4)
        while True:
            if self.hand_over(time.time()):
                await self.store.save()
            await asyncio.sleep(tick)

    def hand_over(self, now: float) -> int:
        held = self.store.held
        late = [(k, h) for k, h in held.undelivered()
                if h.fallback < h.version and now - h.changed >= self.config.fallback_after]
        for key, h in late:
            self.ctx.emit(fallback_event(h.event, self.ctx.plugin, self.config.fallback))
            h.fallback = h.version
            held.touch(key)
        held.fallbacks += len(late)
        return len(late)
