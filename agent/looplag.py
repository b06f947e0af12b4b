"""Event-loop lag: how late a short timer fires is how long something held the loop.

Anything that runs on the loop for long (a big decode, a scan over every stream) delays every
listener, the exporter and the watchdog alike; this makes it visible before the watchdog fires.
A block of `d` seconds shows as a lag between `d - PERIOD` and `d`.
"""

from __future__ import annotations

import asyncio

from agent.selfmetrics import SelfMetrics

PERIOD = 0.05  # 20 wake-ups a second: well under 0.1 % of a core


async def probe(metrics: SelfMetrics, period: float = PERIOD) -> None:
    """Forever: sleep `period`, observe how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        began = loop.time()
        await asyncio.sleep(period)
        lag = max(0.0, loop.time() - began - period)
        metrics.loop_lag.observe(lag)
        if lag > worst:
            worst = lag
            metrics.loop_lag_max.set(worst)
