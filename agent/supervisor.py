"""Runs one component in its own task. This module holds the agent's one broad `except`.

A failure (an exception, a timeout, a failed start) is logged, counted, and answered with a
restart after a jittered exponential backoff; siblings never notice. CancelledError always
propagates, so stopping is never swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import structlog

from agent import cputime
from agent.backoff import Backoff as Backoff  # noqa: PLC0414 - re-exported (plugins import it here)
from agent.bus import EventBus
from agent.components import Collector, Component, Monitor, Service, Sink, process_window
from agent.config import PluginConfig
from agent.delivery import DurableDelivery, route_for
from agent.errors import NotReadyError, PermanentDeliveryError, PermanentError
from agent.metrics import Accumulator, PluginMetrics
from agent.model import Event, Severity
from agent.selfmetrics import SelfMetrics
from agent.worker import Worker

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.window import Window

MONITOR_QUEUE = 64  # windows waiting per monitor: each may hold 100k rows
COMMIT_TIMEOUT = 60.0  # a durable sink's outbox commit: local, so slow is not hung

log = structlog.get_logger("inferwatch")


class Supervised:
    """One component, its task, and its bookkeeping."""

    def __init__(
        self,
        plugin: str,
        component: Component,
        settings: PluginConfig,
        *,
        metrics: SelfMetrics,
        store: PluginMetrics,
        bus: EventBus,
        host_id: str,
        backoff: Backoff | None = None,
        start_timeout: float = 30.0,
        delivery: DurableDelivery | None = None,
    ) -> None:
        self.plugin, self.component, self.settings = plugin, component, settings
        self.metrics, self.store, self.bus, self.host_id = metrics, store, bus, host_id
        self.backoff = backoff or Backoff()
        self.start_timeout = start_timeout
        self.delivery = delivery  # a durable sink's outbox and delivery loop (agent/delivery.py)
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.inbox: asyncio.Queue[Any] | None = None
        self._worker = Worker(f"{plugin}.{component.name}")
        self._inflight: Future[Any] | None = None
        self._failing = False
        self.up = False
        self._pending: list[Any] = []  # a sink's batch being delivered
        self._sink_idle = asyncio.Event()  # set while a sink waits on an empty queue
        self.stretch = 1  # collection interval multiplier, set by the budget controller
        self.cpu_seconds = 0.0  # thread CPU time of this collector's collections
        self._cpu_lock = threading.Lock()  # charged from the threads it hands work to
        self._stopped = False

    @property
    def labels(self) -> tuple[str, str]:
        return self.plugin, self.component.name

    @property
    def task_name(self) -> str:
        return ".".join(self.labels)

    def launch(self) -> None:
        if isinstance(self.component, Sink):
            self.inbox = self.bus.subscribe(".".join(self.labels), self.component.queue_size,
                                            route_for(self.settings))
        elif isinstance(self.component, Monitor):
            self.inbox = asyncio.Queue(MONITOR_QUEUE)
        self.metrics.plugin_up.labels(*self.labels).set(0)
        self.task = asyncio.create_task(self._main(), name=".".join(self.labels))

    def adopt(self, pending: list[Event]) -> None:
        """Take over the batch a sink of the same name left unsent (a reload); before launch."""
        self._pending = pending

    async def stop(self, timeout: float, *, keep_queue: bool = False) -> list[Event]:
        """Idempotent; safe after a failed start or none. Leaves no series behind.

        A sink first delivers what is queued for it, within `timeout`. With `keep_queue` (a
        reload restarting it) the bus keeps its queue and the unsent batch is returned for
        the new sink to adopt; otherwise what is left is dropped and counted.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._flush(deadline)
        # Cancel until it sticks: a cancellation racing a completing await can be absorbed.
        while self.task is not None and not self.task.done() and loop.time() < deadline:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=min(0.1, deadline - loop.time()))
        await self._stop_component(timeout)
        if self.delivery is not None:
            await self.delivery.close()
        self._worker.close()
        self.store.drop(self.component.name)
        with self._cpu_lock:
            self._stopped = True
        self.metrics.forget(*self.labels)
        unsent, self._pending = self._pending, []
        if keep_queue and isinstance(self.component, Sink):
            return unsent
        drop_unsent(self.bus, self.metrics, ".".join(self.labels), unsent)
        return []

    async def _flush(self, deadline: float) -> None:
        """Let a sink take everything queued for it (the stop must not drop the queue)."""
        if self.inbox is None or not isinstance(self.component, Sink):
            return
        loop = asyncio.get_running_loop()
        while ((self._pending or not self.inbox.empty()) and self.task is not None
               and not self.task.done() and loop.time() < deadline):
            self._sink_idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sink_idle.wait(), deadline - loop.time())

    async def _main(self) -> None:
        structlog.contextvars.bind_contextvars(
            plugin=self.plugin, instance=self.component.name, kind=self.component.kind
        )
        loop = asyncio.get_running_loop()
        while True:
            phase, began = "start", loop.time()
            try:
                async with asyncio.timeout(self.start_timeout):
                    await self.component.start()
                phase = "run"
                if not isinstance(self.component, Collector):
                    self.started.set()  # a collector is started once its first tick is done
                await self._body()
                raise RuntimeError(f"{self.component.kind} returned unexpectedly")
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                self._failed("start", exc)
                log.error("component disabled: it cannot work here", error=str(exc))
                self.started.set()
                return
            except Exception as exc:  # noqa: BLE001 - the supervisor is where failures stop
                self._failed(_reason(phase, exc), exc)
            self.started.set()
            await self._stop_component(self.start_timeout)
            if loop.time() - began > self.backoff.cap:
                self.backoff.reset()
            delay = self.backoff.next()
            log.info("component restarts after backoff", delay_seconds=round(delay, 3))
            await asyncio.sleep(delay)
            self.metrics.plugin_restarts.labels(*self.labels).inc()

    async def _body(self) -> None:
        component = self.component
        if isinstance(component, Collector):
            await self._collect_loop(component)
        elif isinstance(component, Service):
            self._succeeded()
            await component.run()
        elif isinstance(component, Sink) and self.delivery is not None:
            await self.delivery.open()
            try:
                async with asyncio.TaskGroup() as group:  # cancelled together on stop
                    group.create_task(self.delivery.run(), name=f"{self.task_name}.delivery")
                    await self._sink_loop(component)
            except ExceptionGroup as failed:  # counted by its first reason, as a lone task's
                raise failed.exceptions[0] from None
        elif isinstance(component, Sink):
            await self._sink_loop(component)
        elif isinstance(component, Monitor):
            await self._monitor_loop(component)
        else:
            raise PermanentError(f"unknown component kind {type(component).__name__}")

    async def _collect_loop(self, collector: Collector) -> None:
        loop = asyncio.get_running_loop()
        base = getattr(collector, "interval", None) or self.settings.interval
        # Collect at once, then on this component's own phase within the interval.
        next_tick = loop.time() + (_phase(".".join(self.labels), base) or base)
        while True:
            interval = base * self.stretch
            self.metrics.collect_interval.labels(*self.labels).set(interval)
            if self._inflight is not None and not self._inflight.done():
                self.metrics.skipped_ticks.labels(*self.labels).inc()
            else:
                try:
                    await self._collect_once(collector)
                finally:
                    self.started.set()
            now = loop.time()
            if next_tick <= now:
                missed = int((now - next_tick) // interval) + 1
                self.metrics.skipped_ticks.labels(*self.labels).inc(missed)
                next_tick += missed * interval
            await asyncio.sleep(next_tick - now)
            next_tick += interval

    async def _collect_once(self, collector: Collector) -> None:
        loop = asyncio.get_running_loop()
        acc, began, timeout = Accumulator(), loop.time(), self.settings.timeout
        if collector.blocking and not inspect.iscoroutinefunction(collector.collect):
            run = contextvars.copy_context().run
            self._inflight = self._worker.submit(run, self._timed, collector.collect, acc)
            await _await_thread(self._inflight, timeout)
        elif inspect.isawaitable(result := collector.collect(acc)):
            async with asyncio.timeout(timeout):
                await result
        if refused := self.store.commit(collector.name, acc):
            self.metrics.series_refused.labels(self.plugin).inc(refused)
            log.warning("series budget exceeded, series refused", refused=refused)
        self.metrics.collect_duration.labels(*self.labels).observe(loop.time() - began)
        self.metrics.collect_last_success.labels(*self.labels).set(time.time())
        self._succeeded()

    def _timed(self, collect: Callable[[Accumulator], object], acc: Accumulator) -> None:
        """Run in the worker thread, so thread_time() is this collector's CPU alone; work it
        hands to threads of its own through cputime.on_behalf is charged here too."""
        began = time.thread_time()
        try:
            with cputime.charging(self.charge):
                collect(acc)
        finally:
            self.charge(time.thread_time() - began)

    def charge(self, seconds: float) -> None:
        """CPU spent for this collector, in its thread or one it handed work to. A call
        that returns after stop() adds no series back."""
        with self._cpu_lock:
            self.cpu_seconds += seconds
            if not self._stopped:
                self.metrics.plugin_cpu.labels(*self.labels).inc(seconds)

    async def _sink_loop(self, sink: Sink) -> None:
        assert self.inbox is not None  # noqa: S101 - set by launch() for sinks
        self._succeeded()
        while True:
            if not self._pending:
                if self.inbox.empty():
                    self._sink_idle.set()
                self._pending = [await self.inbox.get()]
                while len(self._pending) < sink.batch_size and not self.inbox.empty():
                    self._pending.append(self.inbox.get_nowait())
            if self.delivery is not None:  # a commit to its outbox; run() delivers from there
                async with asyncio.timeout(COMMIT_TIMEOUT):
                    await self.delivery.put(self._pending)
                self._pending = []
            else:
                await self._deliver(sink)
            self._succeeded()

    async def _deliver(self, sink: Sink) -> None:
        """A best-effort sink: a failure has the batch retried after a restart; what the
        sink refuses for good (PermanentDeliveryError) is dropped and counted, not retried."""
        try:
            async with asyncio.timeout(sink.deliver_timeout or self.settings.timeout):
                await sink.deliver(self._pending)
        except PermanentDeliveryError as exc:
            self._pending = rejected_rest(self._pending, exc, self.metrics, self.task_name)
        else:
            self._pending = []

    async def _monitor_loop(self, monitor: Monitor) -> None:
        assert self.inbox is not None  # noqa: S101 - set by launch() for monitors
        self._succeeded()
        exported, waited = -1, 0  # after a restart the store holds nothing of it
        while True:
            if exported != monitor.exports.version and (
                    self.inbox.empty() or waited >= MONITOR_QUEUE):  # once per burst
                exported, waited = monitor.exports.version, 0
                self._export(monitor)
            window: Window = await self.inbox.get()
            for event in await process_window(monitor, window):
                self.bus.emit(event)
            waited += 1
            self._succeeded()

    def _export(self, monitor: Monitor) -> None:
        """The monitor's committed series, into the plugin's store (on the event loop)."""
        if refused := self.store.commit(monitor.name, monitor.exports.merged()):
            self.metrics.series_refused.labels(self.plugin).inc(refused)
            log.warning("series budget exceeded, series refused", refused=refused)

    def _succeeded(self) -> None:
        self.up = True
        self.metrics.plugin_up.labels(*self.labels).set(1)
        if self._failing:
            log.info("component recovered")
        self._failing = False
        self.backoff.reset()

    def _failed(self, reason: str, exc: BaseException) -> None:
        self.up = False
        self.metrics.plugin_up.labels(*self.labels).set(0)
        self.metrics.plugin_errors.labels(*self.labels, reason).inc()
        self.store.drop(self.component.name)
        if isinstance(exc, NotReadyError | TimeoutError | PermanentError):
            log.warning("component failed", reason=reason, error=str(exc) or type(exc).__name__)
        else:
            log.error("component failed", reason=reason, exc_info=exc)
        if not self._failing and not isinstance(self.component, Sink):
            self.bus.emit(self._failure_event(reason, exc))
        self._failing = True

    def _failure_event(self, reason: str, exc: BaseException) -> Event:
        return Event(
            kind="plugin.failed", source=self.plugin, host=self.host_id,
            severity=Severity.WARNING,
            attributes={"component": self.component.name, "reason": reason},
            data={"error": f"{type(exc).__name__}: {exc}"[:500]},
        )

    async def _stop_component(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.component.stop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing stop must not stop the others
            log.warning("component stop failed", error=f"{type(exc).__name__}: {exc}")


def rejected_rest(batch: list[Event], exc: PermanentDeliveryError, metrics: SelfMetrics,
                  sink: str) -> list[Event]:
    """Count what a best-effort sink refused for good; the events of the batch neither
    refused nor delivered, to offer again."""
    refused = {e.id for e in exc.events}
    done = ({e.id for e in batch} if exc.delivered is None
            else {e.id for e in exc.delivered}) | refused
    metrics.events_dropped.labels("rejected").inc(len(refused))
    log.warning("sink refused events for good; dropped", sink=sink, rejected=len(refused),
                error=str(exc))
    return [e for e in batch if e.id not in done]


def drop_unsent(bus: EventBus, metrics: SelfMetrics, sink: str, pending: list[Event]) -> None:
    """Unsubscribe a sink for good; what it could not take in time is counted, not silent."""
    queue = bus.unsubscribe(sink)
    lost = len(pending) + (queue.qsize() if queue is not None else 0)
    if lost:
        metrics.events_dropped.labels("stopped").inc(lost)
        log.warning("events dropped at stop: the sink could not take them in time",
                    sink=sink, dropped=lost)


async def _await_thread(future: Future[Any], timeout: float) -> None:
    """Wait for a worker call; on timeout leave it running and raise TimeoutError."""
    waiter = asyncio.wrap_future(future)
    done, _ = await asyncio.wait({waiter}, timeout=timeout)
    if not done:
        waiter.add_done_callback(_consume)
        raise TimeoutError(f"collect did not return within {timeout:g}s")
    waiter.result()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _phase(key: str, interval: float) -> float:
    """A stable offset within the interval, so a plugin's collectors do not all wake at once."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 * interval


def _reason(phase: str, exc: BaseException) -> str:
    if phase == "start":
        return "start"
    return "timeout" if isinstance(exc, TimeoutError) else "exception"
