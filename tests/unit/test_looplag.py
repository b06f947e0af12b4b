"""The loop-lag probe sees a blocked loop, and tells it from waiting for a CPU."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import generate_latest

from agent import looplag
from agent.selfmetrics import SelfMetrics
from tests.helpers import parse_metrics, value


async def test_a_blocked_loop_shows_as_lag_and_as_blocked() -> None:
    metrics = SelfMetrics()
    task = asyncio.create_task(looplag.probe(metrics, period=0.01))
    await asyncio.sleep(0.05)  # a few quiet turns first
    time.sleep(0.12)  # the point: something holds the loop
    await asyncio.sleep(0.05)
    task.cancel()
    scraped = parse_metrics(generate_latest(metrics.registry).decode())
    assert 0.11 <= value(scraped, "inferwatch_event_loop_lag_max_seconds") < 2.0
    assert 0.11 <= value(scraped, "inferwatch_event_loop_blocked_max_seconds") < 2.0
    assert value(scraped, "inferwatch_event_loop_lag_seconds_bucket", le="0.1") == \
        value(scraped, "inferwatch_event_loop_lag_seconds_count") - 1
