"""The MQTT plugin's outbox, used from one worker thread by the sink and the publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from agent.outbox import Outbox
from agent.worker import Worker

T = TypeVar("T")


class SharedOutbox:
    """One SQLite connection, one thread: the sink's writes and the publisher's reads and
    deletes are serialised there and never run on the event loop."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.wake = asyncio.Event()
        self.delivered = self.resent = 0
        self._worker = Worker("mqtt.outbox")
        self._opened = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._worker.call(fn, *args)

    async def open(self) -> None:
        if not self._opened:
            await self.run(self.outbox.open)
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self.run(self.outbox.close)
        self._worker.close()
