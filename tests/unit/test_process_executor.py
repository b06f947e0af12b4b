"""The event loop's default executor: bounded, and every thread started with it, so the
agent's thread count is flat from the start (the soak saw 27 -> 28 after 51 minutes)."""

from __future__ import annotations

import asyncio
import threading

from agent.process import DEFAULT_EXECUTOR_THREADS, bound_default_executor
from tests.helpers import poll


def _pool_threads() -> int:
    return sum(t.name.startswith("inferwatch-pool") for t in threading.enumerate())


def test_every_pool_thread_starts_at_once_and_no_more_later() -> None:
    async def main() -> tuple[int, int]:
        bound_default_executor(asyncio.get_running_loop())
        started = poll(lambda: (n := _pool_threads()) == DEFAULT_EXECUTOR_THREADS and n,
                       what="every pool thread started")
        gate = threading.Event()
        # More overlapping calls than threads: the pool never grows past its bound.
        calls = [asyncio.to_thread(gate.wait, 10) for _ in range(DEFAULT_EXECUTOR_THREADS * 2)]
        gathered = asyncio.gather(*calls)
        await asyncio.sleep(0)
        busy = _pool_threads()
        gate.set()
        await gathered
        return started, busy

    before = _pool_threads()
    started, busy = asyncio.run(main())
    assert started == DEFAULT_EXECUTOR_THREADS
    assert busy == DEFAULT_EXECUTOR_THREADS
    poll(lambda: _pool_threads() == before, what="pool threads gone after shutdown")
