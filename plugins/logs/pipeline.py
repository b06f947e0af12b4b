"""One input's loop: tail -> multi-line -> parse, filter, redact -> every output's outbox ->
checkpoint. The checkpoint moves only after every outbox committed the batch.

Reading and shaping run in the input's worker thread (the event loop only awaits them); a
batch is at most `batch_bytes` of input, so duplicates after a kill -9 are bounded by it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from agent.components import Service
from agent.redact import Redactor
from agent.worker import Worker
from plugins.logs.checkpoint import Checkpoints
from plugins.logs.config import LogInput
from plugins.logs.multiline import Joiner
from plugins.logs.outputs.base import Chunk, LogOutbox
from plugins.logs.parse import Shaper
from plugins.logs.tail import Line, Saved, Tailer, Tracked

log = structlog.get_logger("inferwatch")


@dataclass
class Batch:
    chunks: list[Chunk] = field(default_factory=list)
    saved: dict[str, Saved] = field(default_factory=dict)  # where each file is once committed
    lines: int = 0


@dataclass
class FileLag:
    path: str
    bytes: int
    seconds: float


class InputService(Service):
    def __init__(self, name: str, config: LogInput, redactor: Redactor, boxes: list[LogOutbox],
                 state: Path, *, poll: float, scan: float, batch_bytes: int) -> None:
        super().__init__(f"in.{name}")
        self.input, self.config, self.boxes = name, config, boxes
        self.poll, self.scan_every, self.batch_bytes = poll, scan, batch_bytes
        self.redactor = redactor
        self.tailer = Tailer(config.paths, max_line=config.max_line_bytes,
                             rotate_wait=config.rotate_wait, exclude=config.exclude,
                             start_at_end=config.start_at == "end",
                             max_files=config.max_files, symlinks=config.symlinks)
        self.shaper = Shaper(redactor, parse=config.parse, keep=config.keep, drop=config.drop,
                             debug_per_second=config.debug_lines_per_second)
        self.checkpoints = Checkpoints(state)
        self.read = self.shipped = self.duplicates = 0
        self.counts: Counter[str] = Counter()
        self.lag: list[FileLag] = []
        self._joiners: dict[str, Joiner] = {}
        self._dup_until: dict[str, int] = {}
        self._worker = Worker(f"logs.{name}")
        self._scanned = 0.0

    async def start(self) -> None:
        state = await self._worker.call(self.checkpoints.load)
        self.tailer.restore(state.files)
        self._dup_until = dict(state.pending)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() - self._scanned >= self.scan_every:
                await self._worker.call(self._scan)
                self._scanned = loop.time()
            batch = await self._worker.call(self._read_batch)
            if batch.saved:
                await self._commit(batch)
            closed = await self._worker.call(self._close_drained)
            if not batch.lines and not closed:
                await asyncio.sleep(self.poll)

    async def _commit(self, batch: Batch) -> None:
        pending = {key: saved.offset for key, saved in batch.saved.items()}
        await self._worker.call(self.checkpoints.begin, pending)
        if batch.chunks:
            marker = f"{self.input}"
            for box in self.boxes:
                await box.put(batch.chunks, marker)
        await self._worker.call(self.checkpoints.commit, batch.saved)
        self.shipped += sum(len(c.lines) for c in batch.chunks)

    def _scan(self) -> None:
        self.tailer.scan()
        self._measure_lag()

    def _close_drained(self) -> bool:
        closed = self.tailer.close_drained()
        for tracked in closed:
            self._joiners.pop(tracked.key, None)
        if closed:
            self.checkpoints.forget([t.key for t in closed])
        return bool(closed)

    def _read_batch(self) -> Batch:
        batch, budget, now = Batch(), self.batch_bytes, time.monotonic()
        for tracked, lines in self.tailer.read(budget):
            self.read += len(lines)
            budget -= sum(len(data) + 1 for data, _ in lines)
            self._add(batch, tracked, self._join(tracked, lines, now))
            if budget <= 0:
                break
        for key, joiner in self._joiners.items():
            tracked_now = self.tailer.files.get(key)
            if tracked_now is not None:
                self._add(batch, tracked_now, joiner.due(now))
        return batch

    def _join(self, tracked: Tracked, lines: list[Line], now: float) -> list[Line]:
        if not self.config.multiline_start:
            return lines
        joiner = self._joiners.get(tracked.key)
        if joiner is None:
            joiner = self._joiners[tracked.key] = Joiner(
                self.config.multiline_start, self.config.multiline_timeout,
                self.config.max_line_bytes)
        return joiner.feed(lines, now)

    def _add(self, batch: Batch, tracked: Tracked, lines: Sequence[Line]) -> None:
        if not lines:
            return
        shipped, levels = [], []
        dup_until = self._dup_until.get(tracked.key, -1)
        for data, end in lines:
            if end <= dup_until:
                self.duplicates += 1
            record = self.shaper.shape(data)
            if record is not None:
                shipped.append(record.line)
                levels.append(record.level)
        if shipped:
            batch.chunks.append(Chunk(self.input, tracked.path, time.time(), shipped, levels))
        batch.lines += len(lines)
        fp = tracked.fp
        batch.saved[tracked.key] = Saved(tracked.path, fp.size, fp.digest, lines[-1][1])

    def _measure_lag(self) -> None:
        now = time.monotonic()
        committed = self.checkpoints.state.files
        lag = []
        for key, tracked in self.tailer.files.items():
            saved = committed.get(key)
            done = saved.offset if saved is not None else tracked.offset
            behind = self.tailer.lag_bytes(tracked) if saved is None else max(
                self.tailer.size(tracked) - done, 0)
            seconds = now - tracked.read_at if behind and tracked.read_at else 0.0
            lag.append(FileLag(tracked.path, behind, seconds))
        self.lag = lag

    def figures(self) -> dict[str, dict[str, int]]:
        counts = self.tailer.counts
        joined = sum(j.truncated for j in self._joiners.values())
        return {
            "redactions": dict(self.redactor.counts),
            "dropped": dict(self.shaper.dropped),
            "rotations": {"truncated": counts["truncations"],
                          "copy_followed": counts["copies_followed"],
                          "inode_reused": counts["inode_reused"],
                          "rotated_found": counts["rotated_found"]},
            "truncated": {"lines": counts["truncated_lines"] + joined},
            "errors": {"open": counts["open_error"], "read": counts["read_error"],
                       "not_regular": counts["not_regular"],
                       "symlink_refused": counts["symlink_refused"]},
            "files": {"over_limit": self.tailer.over_limit},
        }

    async def stop(self) -> None:
        await self._worker.call(self.tailer.close)
        self._worker.close()
