"""What routing and durable delivery cost: the bus's dispatch, and events per second through a
durable sink's outbox to a deliver() that returns at once.

    .venv/bin/python bench/sinks.py                  # 200k events through the bus, 50k durable
    .venv/bin/python bench/sinks.py --events 50000 --durable 10000

Dispatch is timed three ways in the same run: a sink with no route (what the MQTT sink and
every sink without `match` get), a sink whose `match` takes every event, and one whose
`match` takes none; each number is the median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bus import EventBus
from agent.components import Sink
from agent.config import SinkConfig
from agent.delivery import DurableDelivery, route_for
from agent.metrics import PluginMetrics
from agent.model import Event, Severity
from agent.selfmetrics import SelfMetrics


async def dispatch(events: list[Event], route: SinkConfig | None) -> float:
    """Events per second from emit() to a sink's queue."""
    bus = EventBus(len(events) + 1, SelfMetrics())
    bus.subscribe("p.s", len(events) + 1, route_for(route) if route else None)
    for event in events:
        bus.emit(event)
    began = time.perf_counter()
    task = asyncio.create_task(bus.run())
    await bus.drain(600)
    took = time.perf_counter() - began
    task.cancel()
    return len(events) / took


class Null(Sink):
    durable = True
    batch_size = 1000

    def __init__(self, expect: int) -> None:
        super().__init__("null")
        self.got, self.expect, self.done = 0, expect, asyncio.Event()

    async def deliver(self, events: Sequence[Event]) -> None:
        self.got += len(events)
        if self.got >= self.expect:
            self.done.set()


async def durable(events: list[Event], folder: Path) -> tuple[float, float]:
    """(commit, deliver) events per second through a durable sink's outbox."""
    sink = Null(len(events))
    delivery = DurableDelivery("bench", sink, SinkConfig(), folder, PluginMetrics("bench", 100))
    await delivery.open()
    began = time.perf_counter()
    for start in range(0, len(events), 1000):
        await delivery.put(events[start:start + 1000])
    committed = time.perf_counter() - began
    began = time.perf_counter()
    task = asyncio.create_task(delivery.run())
    await sink.done.wait()
    delivered = time.perf_counter() - began
    task.cancel()
    await delivery.close()
    return len(events) / committed, len(events) / delivered


def _events(count: int) -> list[Event]:
    kinds = ("drift.detected", "quality.degraded", "gpu.xid", "agent.started")
    return [Event(kind=kinds[n % 4], source="bench", host="h", severity=Severity.WARNING,
                  data={"n": n, "pad": "x" * 200}) for n in range(count)]


async def main(args: argparse.Namespace) -> None:
    events = _events(args.events)
    cases = {"no route": None, "match takes all": SinkConfig(match=["*.*"]),
             "match takes none": SinkConfig(match=["nothing.*"])}
    for name, route in cases.items():
        rates = [await dispatch(events, route) for _ in range(args.repeat)]
        print(f"bus dispatch, {name:>16}: {statistics.median(rates):>10,.0f} events/s")
    with tempfile.TemporaryDirectory() as folder:
        commit, deliver = await durable(_events(args.durable), Path(folder))
    print(f"durable sink: commit {commit:,.0f} events/s, delivery {deliver:,.0f} events/s "
          f"({args.durable} events of ~300 bytes, batches of 1000, synchronous=FULL)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--durable", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
