"""The cost of a sample source: `ctx.submit()` beside the Unix socket's own path, in-process.

    .venv/bin/python bench/sources.py                 # 200,000 records, 3 rounds
    .venv/bin/python bench/sources.py --records 50000 --rounds 1

The same pre-encoded records (20 features each) are judged by the ingest plugin's real
Tally, Pipeline and WindowStage (windows of 1 minute, the join left out: it is the same for
both) through three paths: the socket's framing (`socket.Lines.feed`, 64 KiB chunks), lines
submitted from a worker thread in batches of 1,000 (what `ndjson_file` does: one hop to the
event loop per batch), and the same as dicts. Reported: records per second, best round, and
the ratio to the socket path measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.intake import SampleIntake
from agent.testing import fake_context
from plugins.ingest.bounds import Limits
from plugins.ingest.intake import SubmitReceiver
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.socket import Lines
from plugins.ingest.tally import Tally
from plugins.ingest.windows import WindowStage

BATCH = 1000
LIMIT = 1 << 20


def records(count: int) -> list[dict[str, object]]:
    rng = random.Random(1)
    return [{"model": "m", "request_id": f"r-{i}", "prediction": i % 2, "score": rng.random(),
             "features": {f"f{k}": rng.random() for k in range(20)}} for i in range(count)]


def tally() -> Tally:
    out = Tally(100)
    windows = WindowStage({}, ["1m"], label_wait=0, limits=Limits())
    out.pipeline = Pipeline({}, windows, lambda _batch: None)
    return out


def via_socket(lines: list[bytes]) -> float:
    stream, counted = b"\n".join(lines) + b"\n", tally()
    reader = Lines(LIMIT, counted)
    began = time.perf_counter()
    for i in range(0, len(stream), 1 << 16):
        reader.feed(stream[i:i + (1 << 16)])
    reader.close()
    assert sum(counted.received.values()) == len(lines)
    return time.perf_counter() - began


async def via_submit(items: list[bytes] | list[dict[str, object]]) -> float:
    counted, intake = tally(), SampleIntake()
    receiver = SubmitReceiver(fake_context("ingest", intake=intake), counted, LIMIT)
    await receiver.start()  # attaches on this loop
    source = fake_context("bench", intake=intake)

    def send() -> None:
        for i in range(0, len(items), BATCH):
            assert not source.submit(items[i:i + BATCH]).refused

    began = time.perf_counter()
    await asyncio.to_thread(send)
    elapsed = time.perf_counter() - began
    await receiver.stop()
    assert sum(counted.received.values()) == len(items)
    return elapsed


def best(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dicts = records(args.records)
    lines = [json.dumps(d).encode() for d in dicts]
    socket_s = best(args.rounds, lambda: via_socket(lines))
    lines_s = best(args.rounds, lambda: asyncio.run(via_submit(lines)))
    dicts_s = best(args.rounds, lambda: asyncio.run(via_submit(dicts)))
    print(f"{'path':<28}{'records/s':>12}{'vs socket':>11}")
    for name, seconds in (("socket (Lines.feed)", socket_s),
                          ("ctx.submit, lines, thread", lines_s),
                          ("ctx.submit, dicts, thread", dicts_s)):
        print(f"{name:<28}{args.records / seconds:>12,.0f}{socket_s / seconds:>10.2f}x")


if __name__ == "__main__":
    main()
