"""Where each input resumes: written atomically, and only for lines the outboxes committed.

Per batch: `begin` records the offsets the batch will reach (`pending`) before the lines go
to the outboxes, `commit` moves the offsets there after every outbox committed them. A
kill -9 in between leaves `pending`: the next start re-reads that one batch and counts its
lines as possible duplicates. Each write is a temporary file, fsync, rename, fsync of the
folder, so a crash leaves the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import msgspec
import structlog

from plugins.logs.tail import Saved

log = structlog.get_logger("inferwatch")


class State(msgspec.Struct, kw_only=True):
    files: dict[str, Saved] = msgspec.field(default_factory=dict)  # "dev:ino" -> where
    pending: dict[str, int] = msgspec.field(default_factory=dict)  # "dev:ino" -> batch end
    cursor: str = ""  # journald


class Checkpoints:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = State()
        self.writes = 0
        self.corrupt = False

    def load(self) -> State:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self.state
        try:
            self.state = msgspec.json.decode(raw, type=State)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.corrupt = True
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.path.rename(aside)
            log.error("log checkpoint is corrupt; moved aside, files are read from their start",
                      path=str(self.path), moved_to=str(aside), error=str(exc))
        return self.state

    def begin(self, pending: dict[str, int]) -> None:
        """Not fsynced: it only counts duplicates, and must survive the process (kill -9),
        not the host; the rename keeps it whole either way."""
        self.state.pending = pending
        self._write(sync=False)

    def commit(self, files: dict[str, Saved], cursor: str = "") -> None:
        self.state.files.update(files)
        self.state.pending = {}
        if cursor:
            self.state.cursor = cursor
        self._write()

    def forget(self, keys: list[str]) -> None:
        """Files closed for good (rotated away and drained, or gone)."""
        for key in keys:
            self.state.files.pop(key, None)
        self._write()

    def _write(self, *, sync: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(msgspec.json.encode(self.state))
            while view:  # a short write (the disk filled) must not pass for a checkpoint
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)
        if not sync:
            self.writes += 1
            return
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self.writes += 1
