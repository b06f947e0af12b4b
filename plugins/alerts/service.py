"""The engine in the agent: a service that evaluates on its interval and a sink that feeds
the event rules; both flush through one lock (save the state, then emit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.components import Service, Sink
from agent.context import PluginContext
from agent.errors import InferwatchError
from agent.httpd import Request, Response
from agent.metrics import Accumulator
from agent.model import Event
from plugins.alerts import metrics as m
from plugins.alerts import store
from plugins.alerts.engine import Engine

if TYPE_CHECKING:
    from plugins.alerts.config import AlertsConfig

ROUTE = "/api/v1/alerts"


class Runner:
    """What the service and the sink share: the engine and the one path to disk and bus."""

    def __init__(self, config: AlertsConfig, ctx: PluginContext) -> None:
        self.config, self.ctx = config, ctx
        self.engine = Engine(config, ctx.host_id, ctx.event)
        self._lock = asyncio.Lock()
        self._restored = False
        self.emit_dropped = 0

    async def restore(self) -> None:
        if not self._restored:
            saved = await asyncio.to_thread(store.load, self.ctx.state_dir())
            self.engine.restore(saved)
            if not self.config.generator_url:
                self.engine.generator_url = await asyncio.to_thread(self._generator_url)
            self._restored = True

    def _generator_url(self) -> str:
        """This agent's alerts API as the listener in its config file serves it."""
        from plugins.alerts.command import generator_url  # noqa: PLC0415

        try:
            return generator_url(self.ctx.config_path, self.ctx.host_id)
        except InferwatchError:  # the file changed since it was loaded: keep the default
            return self.engine.generator_url

    async def flush(self) -> None:
        """Save what changed, emit what is due, save the sent marks."""
        async with self._lock:
            await self._save()
            sent = self.engine.outgoing(self._emit)
            if sent:
                await self._save()
            self.commit()

    def _emit(self, event: Event) -> bool:
        ok = self.ctx.emit(event)
        self.emit_dropped += not ok
        return ok

    async def _save(self) -> None:
        if not self.engine.dirty:
            return
        snapshot = self.engine.snapshot()
        try:
            await asyncio.to_thread(store.save, self.ctx.state_dir(), snapshot)
        except OSError as exc:
            self.engine.dirty = True
            self.engine.stats.write_errors += 1
            self.ctx.log.error("cannot write the alert state", error=str(exc))

    def commit(self) -> None:
        stats, out = self.engine.stats, Accumulator()
        for (name, severity, state), count in self.engine.states().items():
            out.add(m.ALERTS, count, alertname=name, severity=severity, state=state)
        for kind in ("metric", "event"):
            out.add(m.RULES, sum(r.kind == kind for r in self.engine.rules.values()), kind=kind)
        for rule in self.engine.rules:  # every rule, failed or not: bounded by the config
            out.add(m.RULE_ERRORS, stats.errors.get(rule, 0), rule=rule)
        for metric, value in ((m.EVALUATIONS, stats.evaluations),
                              (m.EVALUATION_SECONDS, stats.seconds),
                              (m.LAST_EVALUATION, stats.last_seconds),
                              (m.TEMPLATE_ERRORS, stats.template_errors),
                              (m.OVERFLOW, stats.overflow),
                              (m.STATE_WRITE_ERRORS, stats.write_errors),
                              (m.EMIT_DROPPED, self.emit_dropped),
                              (m.EVENTS_SEEN, stats.events_seen)):
            out.add(metric, value)
        self.ctx.metrics.commit("engine", out)

    def serve(self, _request: Request) -> Response:
        alerts = sorted(self.engine.alerts(), key=lambda a: (a["alertname"], a["fingerprint"]))
        body = json.dumps({"alerts": alerts}, separators=(",", ":")).encode()
        return Response(200, body, {"Content-Type": "application/json"})


class AlertService(Service):
    """Evaluates the metric rules (and event rules' expiry) every `interval`."""

    def __init__(self, runner: Runner) -> None:
        super().__init__("engine")
        self.runner = runner

    async def start(self) -> None:
        await self.runner.restore()
        self.runner.ctx.serve(ROUTE, self.runner.serve)

    async def run(self) -> None:
        runner, interval = self.runner, float(self.runner.config.interval)
        loop = asyncio.get_running_loop()
        await runner.flush()  # what a crash left unsent goes out first
        # The first evaluation waits one interval: at start every component's plugin_up is
        # 0 until its first run, so judging at once showed a PluginDown pending for each.
        next_tick = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            runner.engine.evaluate(runner.ctx.read_metrics())
            await runner.flush()
            next_tick = max(next_tick + interval, loop.time())

    async def stop(self) -> None:
        self.runner.ctx.serve(ROUTE, None)
        if self.runner.engine.dirty:
            await self.runner.flush()


class AlertEventSink(Sink):
    """Feeds every event to the event rules (not durable: an event missed while stopped is
    one the agent itself was not running to produce)."""

    batch_size = 500
    deliver_timeout = 30.0

    def __init__(self, runner: Runner) -> None:
        super().__init__("events")
        self.runner = runner

    async def start(self) -> None:
        await self.runner.restore()

    async def deliver(self, events: Sequence[Event]) -> None:
        if self.runner.engine.event_rules:
            self.runner.engine.on_events(events)
            await self.runner.flush()
