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
from pathlib import Path

from agent.selfmetrics import SelfMetrics

PERIOD = 0.05  # 20 wake-ups a second: well under 0.1 % of a core
SCHEDSTAT = Path("/proc/thread-self/schedstat")


def run_queue_wait() -> float:
    """Seconds this thread has spent runnable but not running (0.0 where unknown)."""
    try:
        return int(SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def probe(metrics: SelfMetrics, period: float = PERIOD) -> None:
    """Forever: sleep `period`, observe how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    worst = worst_blocked = 0.0
    while True:
        began, waited = loop.time(), run_queue_wait()
        await asyncio.sleep(period)
        lag = max(0.0, loop.time() - began - period)
        blocked = max(0.0, lag - (run_queue_wait() - waited))
        metrics.loop_lag.observe(lag)
        if lag > worst:
            worst = lag
            metrics.loop_lag_max.set(worst)
        if blocked > worst_blocked:
            worst_blocked = blocked
            metrics.loop_blocked_max.set(worst_blocked)
