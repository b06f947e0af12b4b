"""The service that follows the files, and the collector that exports what it did."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import structlog

from agent.components import Collector, Service
from agent.context import PluginContext
from agent.intake import NO_RECEIVER, Submitted
from agent.metrics import Accumulator, counter, gauge
from agent.supervisor import Backoff
from agent.worker import Worker
from plugins.ndjson_file.config import NdjsonFileConfig
from plugins.ndjson_file.offsets import Offsets
from plugins.ndjson_file.tail import Settings, Stats, Tailer

log = structlog.get_logger("inferwatch")

RECORDS = counter("inferwatch_ndjson_file_records_total",
                  "Lines handed to ingestion, by outcome (accepted, rejected).", "outcome")
REJECTED = counter("inferwatch_ndjson_file_rejected_total",
                   "Lines ingestion could not use, by reason (invalid_json, no_model, "
                   "too_large, ...).", "reason")
REFUSED = counter("inferwatch_ndjson_file_refused_batches_total",
                  "Batches ingestion refused whole and that were retried later, by reason "
                  "(no_receiver: [plugins.ingest] is not enabled).", "reason")
READ = counter("inferwatch_ndjson_file_read_bytes_total", "Bytes read past the offsets.")
ROTATED = counter("inferwatch_ndjson_file_rotations_total",
                  "New files found under a name being followed (rotation).")
TRUNCATED = counter("inferwatch_ndjson_file_truncations_total",
                    "Files that shrank below their offset, read again from the start.")
FILES = gauge("inferwatch_ndjson_file_files", "Files being followed.")
BEHIND = gauge("inferwatch_ndjson_file_behind_bytes",
               "Bytes in the followed files not read yet.")


class FileSource(Service):
    """Polls the files every `interval`; while ingestion refuses, backs off and retries."""

    def __init__(self, config: NdjsonFileConfig, ctx: PluginContext) -> None:
        super().__init__("tail")
        self.config, self.ctx = config, ctx
        settings = Settings(batch_lines=config.batch_lines, max_line_bytes=config.max_line_bytes,
                            max_files=config.max_files, start_at_end=config.start_at == "end",
                            rotate_wait=float(config.rotate_wait))
        offsets = Offsets(ctx.state_root / "plugins" / ctx.plugin / "offsets.json")
        self.tailer = Tailer(config.paths, self._submit, offsets, settings)
        self._worker = Worker(f"{ctx.plugin}.tail")
        self._backoff = Backoff(base=float(config.interval), cap=30.0)
        self._closed: Future[None] | None = None

    def _submit(self, lines: list[bytes]) -> Submitted:
        return self.ctx.submit(lines)  # from the worker thread: the intake hops to the loop

    async def start(self) -> None:
        if self._closed is not None:  # a restart: the last thread must let go of the files
            await asyncio.wrap_future(self._closed)
            self._closed = None
        await self._worker.call(self.ctx.state_dir)
        await self._worker.call(self.tailer.open)

    async def run(self) -> None:
        while True:
            refused = await self._worker.call(self.tailer.poll)
            if not refused:
                self._backoff.reset()
                await asyncio.sleep(float(self.config.interval))
                continue
            if refused == NO_RECEIVER and self._backoff.attempt == 0:
                log.warning("ndjson_file: ingestion is not running; lines wait in their "
                            "files until it is", hint="enable [plugins.ingest]")
            await asyncio.sleep(self._backoff.next())

    async def stop(self) -> None:
        """The files are closed in the worker, after the pass in progress (never under it)."""
        self._closed = self._worker.submit(self.tailer.close)
        self._worker.close()
        self._worker = Worker(f"{self.ctx.plugin}.tail")


class FileStats(Collector):
    blocking = False

    def __init__(self, stats: Stats) -> None:
        super().__init__("stats")
        self.stats = stats

    def collect(self, out: Accumulator) -> None:
        stats = self.stats
        with stats.lock:
            for outcome in ("accepted", "rejected"):
                out.add(RECORDS, stats.records[outcome], outcome=outcome)
            for reason, count in stats.rejected.items():
                out.add(REJECTED, count, reason=reason)
            for reason, count in stats.refused.items():
                out.add(REFUSED, count, reason=reason)
            out.add(READ, stats.events["bytes"])
            out.add(ROTATED, stats.events["rotated"])
            out.add(TRUNCATED, stats.events["truncated"])
            out.add(FILES, stats.files)
            out.add(BEHIND, stats.behind)
