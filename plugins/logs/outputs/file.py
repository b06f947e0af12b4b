"""The `file` output: the shipped lines exactly as redacted, one per line, nothing added.

For users who hand the lines to another shipper, and for tests (a byte-identical receiver).
Appends (O_APPEND); fsync before the outbox lets go of the lines, unless `fsync = false`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from plugins.logs.outputs.base import Chunk, LogOutbox, OutputDown, Sender


class FileSender(Sender):
    def __init__(self, name: str, box: LogOutbox, path: str, *, fsync: bool) -> None:
        super().__init__(name, box)
        self.path, self.fsync = path, fsync
        self._fd: int | None = None

    async def send(self, chunks: list[Chunk]) -> None:
        data = b"".join(line + b"\n" for chunk in chunks for line in chunk.lines)
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise OutputDown("write_error", str(exc)) from None

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o640)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        if self.fsync:
            os.fsync(self._fd)

    async def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
