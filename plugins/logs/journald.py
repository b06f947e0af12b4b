"""journald input: `journalctl -o json --follow` (no binding to libsystemd needed).

The cursor of the last committed entry is kept in the input's checkpoint like a file offset;
a restart passes it back with `--after-cursor`, so nothing is read twice but the batch a
kill -9 interrupted (counted as possible duplicates). The shipped line is the entry's
MESSAGE (a byte-array MESSAGE is decoded as UTF-8 with escapes), redacted; its PRIORITY
becomes the level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import structlog

from agent.components import Service
from agent.errors import PermanentError
from agent.redact import Redactor
from agent.worker import Worker
from plugins.logs.checkpoint import Checkpoints
from plugins.logs.config import LogInput
from plugins.logs.outputs.base import Chunk, LogOutbox
from plugins.logs.parse import Shaper
from plugins.logs.pipeline import FileLag

log = structlog.get_logger("inferwatch")
LEVELS = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")
_decode = msgspec.json.Decoder().decode


def entry_line(entry: dict[str, Any]) -> tuple[bytes, str]:
    """(MESSAGE as bytes, level) of one `journalctl -o json` entry."""
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journalctl writes non-UTF-8 messages as byte arrays
        data = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256)
    else:
        data = str(message).encode("utf-8", "surrogateescape")
    priority = str(entry.get("PRIORITY", ""))
    level = LEVELS[int(priority)] if priority.isdigit() and int(priority) < 8 else ""
    return data, level


class JournalService(Service):
    command = "journalctl"

    def __init__(self, name: str, config: LogInput, redactor: Redactor,
                 boxes: list[LogOutbox], state: Path, *, batch_bytes: int) -> None:
        super().__init__(f"in.{name}")
        self.input, self.config, self.boxes, self.batch_bytes = name, config, boxes, batch_bytes
        self.redactor = redactor
        self.shaper = Shaper(redactor, parse="none", keep=config.keep, drop=config.drop,
                             debug_per_second=config.debug_lines_per_second)
        self.checkpoints = Checkpoints(state)
        self.read = self.shipped = self.duplicates = 0
        self.counts: Counter[str] = Counter()
        self.lag: list[FileLag] = []
        self._worker = Worker(f"logs.{name}")
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        await self._worker.call(self.checkpoints.load)

    def argv(self) -> list[str]:
        cursor = self.checkpoints.state.cursor
        since = ["--after-cursor", cursor] if cursor else ["--lines", "0"]
        return [self.command, "-o", "json", "--follow", "--no-pager", *since,
                *self.config.journal_args]

    async def run(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                limit=self.config.max_line_bytes * 4)
        except FileNotFoundError:
            raise PermanentError("journalctl not found: the journald input needs it") from None
        assert self._proc.stdout is not None  # noqa: S101 - PIPE above
        pending_dups = bool(self.checkpoints.state.pending)
        while True:
            entries = await self._batch(self._proc.stdout)
            if entries is None:
                err = await self._proc.stderr.read() if self._proc.stderr else b""
                raise RuntimeError(f"journalctl exited: {err.decode(errors='replace')[:300]}")
            if pending_dups:
                self.duplicates += len(entries)
                pending_dups = False
            await self._commit(entries)

    async def _batch(self, stdout: asyncio.StreamReader) -> list[dict[str, Any]] | None:
        """Entries until batch_bytes or 200 ms after the first; None at EOF."""
        entries: list[dict[str, Any]] = []
        size, deadline = 0, None
        while size < self.batch_bytes:
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                raw = await asyncio.wait_for(stdout.readline(), timeout)
            except TimeoutError:
                break
            except ValueError:  # an entry over the reader's limit
                self.counts["too_long"] += 1
                continue
            if not raw:
                return entries or None
            deadline = deadline or time.monotonic() + 0.2
            size += len(raw)
            with contextlib.suppress(msgspec.DecodeError):
                entry = _decode(raw)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    async def _commit(self, entries: list[dict[str, Any]]) -> None:
        lines, levels = [], []
        for entry in entries:
            data, level = entry_line(entry)
            record = self.shaper.shape(data)
            if record is not None:
                lines.append(record.line)
                levels.append(level)
        self.read += len(entries)
        cursor = str(entries[-1].get("__CURSOR", "")) if entries else ""
        if not cursor:
            return
        await self._worker.call(self.checkpoints.begin, {"journal": len(entries)})
        if lines:
            chunk = Chunk(self.input, "journald", time.time(), lines, levels)
            for box in self.boxes:
                await box.put([chunk], self.input)
        await self._worker.call(self.checkpoints.commit, {}, cursor)
        self.shipped += len(lines)

    def figures(self) -> dict[str, dict[str, int]]:
        return {"redactions": dict(self.redactor.counts), "dropped": dict(self.shaper.dropped),
                "rotations": {}, "truncated": {"lines": self.counts["too_long"]},
                "errors": {}, "files": {}}

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(proc.wait(), 5.0)
        self._worker.close()
