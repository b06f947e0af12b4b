"""The event bus: a bounded queue fanned out to each sink's own bounded queue.

emit() never blocks the producer: when a queue is full the event is dropped and counted.
Durable delivery is the outbox's job (a sink's), not the bus's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import structlog

from agent.model import Event
from agent.selfmetrics import SelfMetrics

log = structlog.get_logger("inferwatch")


class EventBus:
    def __init__(self, size: int, metrics: SelfMetrics) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self._subscribers: dict[str, asyncio.Queue[Event]] = {}
        self._routes: dict[str, Callable[[Event], bool]] = {}  # absent: every event
        self._metrics = metrics
        self._emitted: dict[str, Any] = {}  # kind -> counter child: no labels() per event
        metrics.event_queue_depth.set_function(self._queue.qsize)  # computed at scrape
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def emit(self, event: Event) -> bool:
        """Accept an event from any thread; False when it had to be dropped."""
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._put, event)
            return True
        return self._put(event)

    def _put(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._metrics.events_dropped.labels("queue_full").inc()
            return False
        child = self._emitted.get(event.kind)
        if child is None:
            child = self._emitted[event.kind] = self._metrics.events_emitted.labels(event.kind)
        child.inc()
        return True

    def subscribe(self, name: str, size: int,
                  route: Callable[[Event], bool] | None = None) -> asyncio.Queue[Event]:
        """A sink's queue; one kept across a reload (see Supervised.stop) is taken over as is.

        `route` (agent.delivery.route_for) decides which events are queued for it; the new
        config's route replaces a kept queue's old one."""
        self._routes.pop(name, None)
        if route is not None:
            self._routes[name] = route
        queue = self._subscribers.get(name)
        if queue is None:
            queue = self._subscribers[name] = asyncio.Queue(size)
        return queue

    def unsubscribe(self, name: str) -> asyncio.Queue[Event] | None:
        """Stop feeding a sink; its queue, with whatever it still holds, is returned."""
        self._routes.pop(name, None)
        return self._subscribers.pop(name, None)

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            routes = self._routes
            for name, queue in list(self._subscribers.items()):
                route = routes.get(name)
                if route is not None and not route(event):
                    continue
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._metrics.events_dropped.labels("sink_full").inc()
                    log.warning("sink queue full, event dropped", sink=name, kind=event.kind)
            self._queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Give queued events a chance to reach the sinks before they stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
