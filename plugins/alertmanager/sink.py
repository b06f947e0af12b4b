"""Alert events into the held set: committed to the state dir before any Alertmanager is told.

deliver() returns once the set is on disk (the events are then acknowledged); the senders
(plugins/alertmanager/sender.py), one per Alertmanager, are woken to send the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import ClassVar

import structlog

from agent.alertroute import MalformedAlertError, alert_of, alert_routed
from agent.components import Sink
from agent.model import Event
from plugins.alertmanager.config import AlertmanagerConfig
from plugins.alertmanager.held import HeldAlerts

log = structlog.get_logger("inferwatch")


class AlertStore:
    """The held set, shared by the sink, the senders and the fallback watch (one loop)."""

    def __init__(self, held: HeldAlerts) -> None:
        self.held = held
        self.wakes = {url: asyncio.Event() for url in held.urls}
        self._lock = asyncio.Lock()
        self._loaded = False

    async def open(self) -> None:
        async with self._lock:
            if not self._loaded:
                await asyncio.to_thread(self.held.open)
                self._loaded = True
        self.wake()

    async def close(self) -> None:
        async with self._lock:
            if self._loaded:
                self._loaded = False
                await asyncio.to_thread(self.held.db.close)

    async def save(self) -> None:
        """Write what changed; taken under the lock, so writes keep the order of changes."""
        async with self._lock:
            if self._loaded:
                await asyncio.to_thread(self.held.db.write, *self.held.changes())

    def wake(self) -> None:
        for event in self.wakes.values():
            event.set()


class AlertmanagerSink(Sink):
    durable: ClassVar[bool] = True
    batch_size = 500
    queue_size = 10_000
    deliver_timeout = 60.0  # a local write; slow is not hung

    def __init__(self, config: AlertmanagerConfig, store: AlertStore, plugin: str) -> None:
        super().__init__("alerts")
        self.config, self.store, self.plugin = config, store, plugin
        self.malformed = 0
        self.replays = 0

    async def start(self) -> None:
        await self.store.open()

    async def stop(self) -> None:
        await self.store.close()

    async def deliver(self, events: Sequence[Event]) -> None:
        changed = False
        now = time.time()
        for event in events:
            if not alert_routed(self.config, self.plugin, event):
                continue
            try:
                alert_of(event)
            except MalformedAlertError as exc:
                self.malformed += 1
                log.warning("malformed alert event skipped", kind=event.kind, id=event.id,
                            error=str(exc))
                continue
            if self.store.held.apply(event, now):
                changed = True
            else:
                self.replays += 1
        if changed:
            await self.store.save()
            self.store.wake()
