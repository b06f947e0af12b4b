"""A one-thread worker for blocking calls (psutil, statvfs, NVML).

Unlike ThreadPoolExecutor, its thread is a daemon: a call hung in the kernel or a driver
cannot hold the process at exit, so SIGTERM still stops the agent in time.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]

# Below this many rows a window's arithmetic takes well under a millisecond: less than the
# hand-off to a thread and back (0.1-0.2 ms of wall time on a loaded host, each way through
# the loop's self-pipe), and too short to delay a scrape.
INLINE_ROWS = 2_000


async def offload(fn: Callable[..., T], *args: Any, rows: int) -> T:
    """fn(*args) in a thread for a large window, on the event loop for a small one."""
    if rows < INLINE_ROWS:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._queue.put((future, fn, args))
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn in this worker and await its result from the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, not swallowed
                future.set_exception(exc)
