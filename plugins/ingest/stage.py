"""The two services behind the pipeline: the late-label join and the window clock.

Records queue in memory for the join (bounded: beyond it they are dropped and counted) and go
to SQLite through the join's own worker thread; joined pairs go to the windows through
`on_joined`. The window service closes panes on wall time and builds their columns in its own
worker thread, so a 100,000-row window never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence

import structlog

from agent.components import Service
from agent.model import Label, Sample
from agent.window import Window
from agent.worker import Worker
from plugins.ingest import running
from plugins.ingest.join import Joined, LabelJoin
from plugins.ingest.windows import Pane, WindowStage

log = structlog.get_logger("inferwatch")
BATCH = 5000
HINT_EVERY = 3600.0  # the late-label hint, at most this often
MOST = 0.5  # share of labels missing their prediction that earns the hint
EXPIRE_EVERY = 60.0
REFRESH_EVERY = 5.0
WINDOW_TICK = 1.0
STEP = 16  # panes built, or windows assembled, between two turns of the event loop


class JoinStage(Service):
    def __init__(self, store: LabelJoin, queue_size: int) -> None:
        super().__init__("join")
        self.store = store
        self.pending: list[Sample | Label] = []  # a list, not a Queue: ~10x cheaper per record
        self.queue_size = queue_size
        self._wake: asyncio.Event | None = None
        self.dropped = 0
        self.joined: Counter[str] = Counter()  # by model
        self.waiting = {"predictions": 0, "labels": 0}
        self.on_joined: Callable[[Sequence[Joined]], None] | None = None
        self._worker = Worker("ingest.join")
        self._counted: Counter[str] = Counter()  # the store's counts at the last hint check
        self._hinted = -HINT_EVERY

    def offer_many(self, records: list[Sample | Label]) -> None:
        """The ingest paths' consumer (on the loop): never blocks; counts what does not fit."""
        room = self.queue_size - len(self.pending)
        if len(records) > room:
            self.dropped += len(records) - max(0, room)
            records = records[:max(0, room)]
        if records:
            self.pending += records
            if len(self.pending) == len(records) and self._wake is not None:
                self._wake.set()

    async def _call(self, fn: Callable[..., object], *args: object) -> object:
        return await self._worker.call(fn, *args)

    async def start(self) -> None:
        await self._call(self.store.open)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        next_expiry = loop.time() + EXPIRE_EVERY
        next_refresh, changed = 0.0, True
        while True:
            if not self.pending:
                wake.clear()
                until = min(next_expiry, next_refresh) if changed else next_expiry
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, until - loop.time())):
                        await wake.wait()
            if self.pending:
                batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
                await self._add(batch)
                changed = True
            if loop.time() >= next_expiry:
                await self._call(self.store.expire)
                self.hint(loop.time())
                next_expiry, next_refresh, changed = loop.time() + EXPIRE_EVERY, 0.0, True
            if changed and loop.time() >= next_refresh:  # counting rows scans: not too often
                await self._refresh()
                next_refresh, changed = loop.time() + REFRESH_EVERY, False

    async def _add(self, batch: list[Sample | Label]) -> None:
        joined = await self._call(self.store.add_bounded, batch)
        assert isinstance(joined, list)  # noqa: S101 - LabelJoin.add returns a list
        for pair in joined:
            if not pair.replaces:  # a corrected label is not a second join
                self.joined[pair.sample.model] += 1
        if joined and self.on_joined is not None:
            self.on_joined(joined)

    def hint(self, now: float) -> None:
        """Warn, naming label_ttl, when most labels since the last check found no prediction
        in time: usually labels that come later than label_ttl (months-late ground truth)."""
        counts = self.store.counts
        missed, seen = missed_labels(counts, self._counted)
        self._counted = Counter(counts)
        if seen and missed > MOST * seen and now - self._hinted >= HINT_EVERY:
            self._hinted = now
            log.warning("most labels found no prediction within label_ttl: if labels come "
                        "later than that, raise [plugins.ingest] label_ttl", missed=missed,
                        labels=seen, label_ttl_seconds=self.store.ttl)

    async def _refresh(self) -> None:
        for table in self.waiting:
            count = await self._call(self.store.waiting, table)
            assert isinstance(count, int)  # noqa: S101
            self.waiting[table] = count

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self._call(self.store.close)
        self._worker.close()


class WindowService(Service):
    """Closes panes on wall time; every `running_every` (None: never) also publishes a
    provisional running view of each window still open (plugins/ingest/running.py)."""

    def __init__(self, stage: WindowStage, publish: Callable[[Window], None],
                 running_every: float | None = None) -> None:
        super().__init__("windows")
        self.stage, self.publish = stage, publish
        self.published = 0
        self.running_every = running_every
        self._next_running = 0.0
        self._worker = Worker("ingest.windows")

    async def run(self) -> None:
        while True:
            # On the second: panes of every length end on one.
            await asyncio.sleep(WINDOW_TICK - time.time() % WINDOW_TICK + 0.001)
            now = time.time()
            await self._tick(now)
            if self.running_every is not None and now >= self._next_running:
                self._next_running = now + self.running_every
                await self._running(now)

    async def _tick(self, now: float) -> None:
        """Windows are assembled on the loop: a few at a time, so a burst of them (a flood
        fills count windows fast) never holds the loop for long."""
        due = self.stage.close_due(now)
        for i in range(0, len(due), STEP):
            chunk = due[i:i + STEP]
            await self._worker.call(_build, chunk)
            self._publish(self.stage.retire(chunk, now, STEP))
            await asyncio.sleep(0)
        while windows := self.stage.finalize_due(now, STEP):
            self._publish(windows)
            await asyncio.sleep(0)

    def _publish(self, windows: list[Window]) -> None:
        for window in windows:
            self.publish(window)
            self.published += 1

    async def _running(self, now: float) -> None:
        copies = running.snapshot(self.stage)
        if copies:
            await self._worker.call(_build, copies)
            for window in running.views(copies, now):
                self.publish(window)

    async def stop(self) -> None:
        self._worker.close()


def missed_labels(counts: Counter[str], before: Counter[str]) -> tuple[int, int]:
    """(labels that found no prediction in time, labels that reached the join) since `before`."""
    missed = sum(counts[k] - before[k] for k in ("labels_expired", "unmatched_labels"))
    met = sum(counts[k] - before[k] for k in ("labels_joined", "labels_duplicate"))
    return missed, missed + met


def _build(panes: list[Pane]) -> None:
    for pane in panes:
        pane.build()
