"""The agent's life: validate, start downstream first, serve, reload on SIGHUP, stop upstream."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import signal
import time
from collections.abc import Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent import exposure, logs, looplag
from agent.budget import BudgetController
from agent.bus import EventBus
from agent.components import START_ORDER, Collector, Component, Monitor, Sink
from agent.config import (
    Config,
    PluginConfig,
    check_state_dir,
    config_warnings,
    load_config,
    parse_listen,
)
from agent.context import PluginContext
from agent.delivery import durable_delivery
from agent.errors import ConfigError, StartupError
from agent.exporter import Exporter
from agent.intake import IntakeMetrics, SampleIntake
from agent.loader import Plugins, discover
from agent.metrics import PluginMetrics
from agent.model import Event, Severity
from agent.readback import Families, read_families
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised, drop_unsent
from agent.systemd import Notifier

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.window import Window

log = structlog.get_logger("inferwatch")


@dataclass
class PluginInstance:
    name: str
    config: PluginConfig
    store: PluginMetrics
    supervised: list[Supervised] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        config_path: Path | None,
        *,
        extra_plugins: Sequence[str] = (),
        strict_plugins: bool = False,
        notifier: Notifier | None = None,
    ) -> None:
        self.config_path = config_path
        self.plugins: Plugins = discover(extra_plugins, strict=strict_plugins)
        self.extra_plugins = tuple(extra_plugins)
        self.notifier = notifier or Notifier()
        self.config = self.load()
        self.instances: dict[str, PluginInstance] = {}
        self._stop = asyncio.Event()
        self._ready = False
        self._reload_lock = asyncio.Lock()
        self._reload_queued = False
        self._tasks: list[asyncio.Task[None]] = []
        self._budgeter: BudgetController | None = None
        self.intake = SampleIntake()  # plugins' samples, to whichever plugin receives them
        self.routes: dict[str, Any] = {}  # plugins' GET paths on the metrics listener

    def load(self) -> Config:
        """Validate everything before anything starts; raise ConfigError listing every problem."""
        config = load_config(self.config_path, self.plugins.config_models())
        if problems := check_state_dir(config.agent.state_dir):
            raise ConfigError(problems)
        return config

    async def run(self) -> int:
        config = self.config
        logs.configure(config.agent.log_level, config.agent.log_format)
        for record in self.plugins.records:
            if record.error:
                log.error("plugin not loaded", plugin=record.name, error=record.error)
        for warning in config_warnings(config):
            log.warning("config", problem=warning)
        for warning in exposure.warnings(config):
            log.warning("exposed setting", problem=warning)
        self.metrics = SelfMetrics()
        self.bus = EventBus(config.agent.event_queue_size, self.metrics)
        self.metrics.registry.register(IntakeMetrics(self.intake))
        self.exposition = self.metrics.exposition()
        self.exporter = Exporter(config.prometheus, self.exposition, lambda: self._ready,
                                 self.routes)
        if config.prometheus.enabled:
            await self.exporter.start()
        try:
            return await self._serve(config)
        finally:
            await self.exporter.stop()
            self.notifier.close()

    async def _serve(self, config: Config) -> int:
        self._tasks.append(asyncio.create_task(self.bus.run(), name="bus"))
        self._tasks.append(asyncio.create_task(looplag.probe(self.metrics), name="loop-lag"))
        self._install_signals()
        await self._start_plugins(self._build(config, config.plugins))
        self._mark_loaded()
        gc.freeze()  # start-up objects live for good: keep them out of every full collection
        self._ready = True
        self.notifier.ready(self._status())
        log.info("agent started", listen=config.prometheus.listen, plugins=sorted(self.instances),
                 config=str(self.config_path or "defaults"))
        self.bus.emit(self._event("agent.started", {"plugins": sorted(self.instances)}))
        if self.notifier.watchdog_interval:
            self._tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        self._follow_budget(config)
        await self._stop.wait()
        await self._shutdown()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._hangup)

    def _hangup(self) -> None:
        """A storm of SIGHUPs is one reload after the running one (which reads the file
        again), not one each: they queue on the lock, and the stop would wait behind them."""
        if not self._reload_queued:
            self._reload_queued = True
            self._spawn(self.reload())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name="reload")
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    # -- plugins --------------------------------------------------------------------------

    def _build(self, config: Config, plugins: dict[str, PluginConfig]) -> list[PluginInstance]:
        built = []
        for name, settings in sorted(plugins.items()):
            if not settings.enabled:
                continue
            store = PluginMetrics(name, config.prometheus.series_limit_per_plugin)
            built.append(PluginInstance(name, settings, store))
        return built

    async def _start_plugins(self, instances: list[PluginInstance],
                             carried: dict[tuple[str, str], list[Event]] | None = None) -> None:
        """`carried`: unsent batches of sinks stopped by a reload, for their successors."""
        carried = dict(carried or {})
        for instance in instances:
            self.instances[instance.name] = instance
            self.metrics.snapshots.attach(instance.store)
            await self._components(instance)
            for sup in instance.supervised:
                if isinstance(sup.component, Sink) and sup.labels in carried:
                    sup.adopt(carried.pop(sup.labels))
        for labels, unsent in carried.items():  # that sink is gone from the new config
            drop_unsent(self.bus, self.metrics, ".".join(labels), unsent)
        for kind in START_ORDER:
            stage = [s for i in instances for s in i.supervised if s.component.kind == kind]
            for sup in stage:
                sup.launch()
            await self._await_started(stage)

    async def _components(self, instance: PluginInstance) -> None:
        ctx = PluginContext(
            plugin=instance.name, config=instance.config, host_id=self.config.agent.host_id,
            state_root=Path(self.config.agent.state_dir), metrics=instance.store,
            emitter=self.bus.emit, window_sink=self._route_window,
            config_path=self.config_path, extra_plugins=self.extra_plugins,
            hook=self.plugins.manager.hook,
            intake=self.intake,
            read_metrics=self._read_metrics, routes=self.routes,
        )
        try:
            result = self.plugins.call(instance.name, "inferwatch_components",
                                       config=instance.config, ctx=ctx)
            components = await result if inspect.isawaitable(result) else result
            instance.supervised = [self._supervise(instance, c) for c in _checked(components)]
        except Exception as exc:  # one plugin's broken set-up must not stop the others
            self.metrics.plugin_errors.labels(instance.name, "", "start").inc()
            self.metrics.plugin_up.labels(instance.name, "").set(0)
            log.error("plugin set-up failed; plugin disabled", plugin=instance.name, exc_info=exc)

    def _read_metrics(self) -> Families:
        return read_families(self.metrics.registry, self.metrics.snapshots)

    def _route_window(self, window: Window) -> None:
        """Every monitor of every plugin gets every window (a provisional one only if it
        asked); a full queue drops and counts."""
        for instance in self.instances.values():
            for sup in instance.supervised:
                if sup.inbox is None or not isinstance(sup.component, Monitor):
                    continue
                if window.provisional and not sup.component.provisional:
                    continue
                try:
                    sup.inbox.put_nowait(window)
                except asyncio.QueueFull:
                    self.metrics.windows_dropped.labels(*sup.labels).inc()

    def _supervise(self, instance: PluginInstance, component: Component) -> Supervised:
        delivery = durable_delivery(instance.name, component, instance.config,
                                    Path(self.config.agent.state_dir), instance.store)
        return Supervised(
            instance.name, component, instance.config, metrics=self.metrics,
            store=instance.store, bus=self.bus, host_id=self.config.agent.host_id,
            start_timeout=self.config.agent.start_timeout, delivery=delivery,
        )

    async def _await_started(self, stage: list[Supervised]) -> None:
        if not stage:
            return
        waits = [asyncio.create_task(s.started.wait()) for s in stage]
        _, pending = await asyncio.wait(waits, timeout=self.config.agent.start_timeout)
        for task in pending:
            task.cancel()
        for sup in stage:
            if not sup.started.is_set():
                log.warning("component is slow to start; continuing without it",
                            plugin=sup.plugin, instance=sup.component.name)

    async def _stop_plugins(self, instances: Iterable[PluginInstance], budget: float,
                            keep: Collection[str] = ()) -> dict[tuple[str, str], list[Event]]:
        """Upstream first, each stage a share of what is left of `budget`; sinks, last, get
        the rest to deliver their queues. The sinks of plugins in `keep` (restarted by a
        reload) keep their queues; their unsent batches are returned by (plugin, component).
        """
        instances = list(instances)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        carried: dict[tuple[str, str], list[Event]] = {}
        for left, kind in enumerate(reversed(START_ORDER)):
            stage = [s for i in instances for s in i.supervised if s.component.kind == kind]
            share = (deadline - loop.time()) / (len(START_ORDER) - left)
            if kind == "sink":
                await self.bus.drain(share / 2)
                share = deadline - loop.time()
            unsent = await asyncio.gather(*(s.stop(share, keep_queue=s.plugin in keep)
                                            for s in stage))
            carried.update((s.labels, u) for s, u in zip(stage, unsent, strict=True)
                           if s.plugin in keep and isinstance(s.component, Sink))
        for instance in instances:
            self.metrics.snapshots.detach(instance.name)
            self.instances.pop(instance.name, None)
            _forget_setup(self.metrics, instance.name)
        return carried

    # -- reload and shutdown --------------------------------------------------------------

    async def reload(self) -> None:
        """Apply a changed file, or refuse it and keep the running config whole; either way
        systemd hears READY=1 again, and `inferwatch_config_last_reload_successful` says which."""
        async with self._reload_lock:
            self._reload_queued = False
            if self._stop.is_set():  # the stop has the plugins now
                return
            self.notifier.reloading()
            try:
                await self._reload()
            except Exception as exc:  # a reload must never leave systemd waiting in RELOADING
                self.metrics.reload_success.set(0)
                log.error("reload failed", exc_info=exc)
            finally:
                self.notifier.ready(self._status())

    async def _reload(self) -> None:
        try:
            new = await asyncio.to_thread(self.load)
            await self._switch_exporter(new)
        except (ConfigError, StartupError) as exc:
            self.metrics.reload_success.set(0)
            problems = exc.problems if isinstance(exc, ConfigError) else str(exc).splitlines()
            log.error("reload refused; keeping the running configuration", problems=problems)
            return
        await self._apply(new)

    async def _apply(self, new: Config) -> None:
        old = self.config
        for key in ("host_id", "state_dir", "event_queue_size"):
            if getattr(old.agent, key) != getattr(new.agent, key):
                log.warning("agent setting changes only on restart", key=f"agent.{key}")
        logs.configure(new.agent.log_level, new.agent.log_format)
        self._follow_budget(new)
        changed = {n for n in old.plugins.keys() | new.plugins.keys()
                   if old.plugins.get(n) != new.plugins.get(n)}
        self.config = new
        stopping = [self.instances[n] for n in sorted(changed) if n in self.instances]
        restart = {n: new.plugins[n] for n in changed if n in new.plugins}
        carried = await self._stop_plugins(stopping, new.agent.stop_timeout, keep=restart)
        await self._start_plugins(self._build(new, restart), carried)
        self._mark_loaded()
        log.info("configuration reloaded", restarted=sorted(changed))

    async def _switch_exporter(self, new: Config) -> None:
        """The new listener comes up before the old one goes; if it cannot, the old one keeps
        serving and StartupError refuses the whole reload. Same address: updated in place."""
        old, settings = self.exporter, new.prometheus
        if settings == old.settings:
            return
        if old.updatable(settings):
            old.update(settings)
            return
        fresh = Exporter(settings, self.exposition, lambda: self._ready, self.routes)
        if settings.enabled:
            await self._start_beside(old, fresh)
        await old.stop()
        self.exporter = fresh

    async def _start_beside(self, old: Exporter, fresh: Exporter) -> None:
        try:
            await fresh.start()
        except StartupError:
            if not old.running or _port(old.settings.listen) != _port(fresh.settings.listen):
                raise
        else:
            return
        # Same port (another host form, or TLS switched on or off): the old socket must go
        # first; if the new one still cannot listen, the old one comes back.
        await old.stop()
        try:
            await fresh.start()
        except StartupError:
            await old.start()
            raise

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("agent stopping")
        self.bus.emit(self._event("agent.stopping", {}))
        budget = self.config.agent.stop_timeout * 0.9
        # A reload in progress ends first (it may be stopping or starting these very
        # plugins, with a sink's queue held for its successor); none begins after.
        async with self._reload_lock:
            await self._stop_plugins(list(self.instances.values()), budget)
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("agent stopped")

    # -- health -----------------------------------------------------------------------------

    def _follow_budget(self, config: Config) -> None:
        """Start the controller once a budget is set; a reload changes the budget it keeps to
        (lifted, it restores every interval step by step)."""
        if self._budgeter is not None:
            self._budgeter.settings = config.agent
        elif config.agent.cpu_percent or config.agent.rss_bytes:
            self._budgeter = self._budget()
            self._tasks.append(asyncio.create_task(self._budgeter.run(), name="budget"))

    def _budget(self) -> BudgetController:
        for resource in ("cpu", "rss"):
            self.metrics.budget_exceeded.labels(resource).set(0)
        return BudgetController(
            self.config.agent, self.metrics, emit=self.bus.emit,
            collectors=lambda: [s for i in self.instances.values() for s in i.supervised
                                if isinstance(s.component, Collector)])

    async def _watchdog(self) -> None:
        """Ping only while the loop is responsive and every supervisor task is alive."""
        assert self.notifier.watchdog_interval is not None  # noqa: S101
        period = self.notifier.watchdog_interval
        loop = asyncio.get_running_loop()
        status = ""
        while True:
            if (now := self._status()) != status:
                self.notifier.status(status := now)
            began = loop.time()
            await asyncio.sleep(period / 2)
            lag = loop.time() - began - period / 2
            dead = [s.labels for i in self.instances.values() for s in i.supervised
                    if s.task is not None and s.task.done() and not s.task.cancelled()
                    and s.task.exception() is not None]
            if lag < period and not dead:
                self.notifier.watchdog()
            else:
                log.error("watchdog ping withheld", loop_lag_seconds=round(lag, 3),
                          dead=[".".join(d) for d in dead])

    def _status(self) -> str:
        sups = [s for i in self.instances.values() for s in i.supervised]
        up = sum(s.up for s in sups)
        return f"running: {len(self.instances)} plugins, {up}/{len(sups)} components up"

    def _mark_loaded(self) -> None:
        self.metrics.reload_success.set(1)
        self.metrics.reload_time.set(time.time())

    def _event(self, kind: str, data: dict[str, object]) -> Event:
        return Event(kind=kind, source="agent", host=self.config.agent.host_id,
                     severity=Severity.INFO, data=data)


def _checked(components: object) -> list[Component]:
    items = list(components) if isinstance(components, Iterable) else [components]
    checked = [c for c in items if isinstance(c, Component)]
    if len(checked) != len(items):
        raise TypeError(f"inferwatch_components returned non-components: {items!r}")
    if len({c.name for c in checked}) != len(checked):
        raise ValueError("component names within a plugin must be unique")
    return checked


def _port(listen: str) -> int:
    return parse_listen(listen)[1]


def _forget_setup(metrics: SelfMetrics, plugin: str) -> None:
    with contextlib.suppress(KeyError):
        metrics.plugin_up.remove(plugin, "")
    with contextlib.suppress(KeyError):
        metrics.plugin_errors.remove(plugin, "", "start")
