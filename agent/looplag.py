"""Event-loop lag: how late a short timer fires is how long something held the loop.

Anything that runs on the loop for long (a big decode, a scan over every stream) delays every
listener, the exporter and the watchdog alike; this makes it visible before the watchdog fires.
A block of `d` seconds shows as a lag between `d - PERIOD` and `d`. On a busy host part of the
lag is only waiting for a CPU; the loop thread's run-queue wait (Linux schedstat) tells the
two apart, so `blocked` is what the agent's own work (or its other threads, through the GIL)
cost.
"""

from __future__ import annotations

import asyncio
import os

from agent.selfmetrics import SelfMetrics

PERIOD = 0.05  # 20 wake-ups a second: about 0.05 % of a core
SCHEDSTAT = "/proc/thread-self/schedstat"  # opened by the loop's thread: that thread's


class RunQueue:
    """Seconds the opening thread has spent runnable but not running (Linux; else 0)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(SCHEDSTAT, os.O_RDONLY)
        except OSError:
            self._fd = None

    def wait(self) -> float:
        if self._fd is None:
            return 0.0
        try:
            return int(os.pread(self._fd, 64, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def probe(metrics: SelfMetrics, period: float = PERIOD) -> None:
    """Forever: sleep `period`, observe how much later than asked the loop woke us."""
    queue = RunQueue()
    try:
        await _measure(metrics, period, queue)
    finally:
        queue.close()


async def _measure(metrics: SelfMetrics, period: float, queue: RunQueue) -> None:
    loop = asyncio.get_running_loop()
    worst = worst_blocked = 0.0
    while True:
        began, waited = loop.time(), queue.wait()
        await asyncio.sleep(period)
        lag = max(0.0, loop.time() - began - period)
        blocked = max(0.0, lag - (queue.wait() - waited))
        metrics.loop_lag.observe(lag)
        if lag > worst:
            worst = lag
            metrics.loop_lag_max.set(worst)
        if blocked > worst_blocked:
            worst_blocked = blocked
            metrics.loop_blocked_max.set(worst_blocked)
