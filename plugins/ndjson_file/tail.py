"""Following files of NDJSON samples and labels, in a worker thread.

Each pass finds the files the globs match, reads each one's whole lines past its saved
offset, hands them to ingestion a batch at a time and only then moves (and saves) the
offset: a `kill -9` repeats at most the batch in flight, and loses nothing. A last line
without its newline is left where it is until the newline comes. A file renamed away
(rotation by rename-and-create) or deleted is read to its end, and kept open for
`rotate_wait` in case the writer still appends to it; one that shrank was truncated and
is read again from its start.
"""

from __future__ import annotations

import glob
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from agent.intake import NO_RECEIVER, STOPPED, TIMEOUT, TOO_MANY, Submitted
from plugins.ndjson_file.offsets import Offsets, Position

log = structlog.get_logger("inferwatch")
CHUNK = 1 << 20
TOO_LARGE = "too_large"
REFUSALS = (NO_RECEIVER, TOO_MANY, TIMEOUT, STOPPED)
WARNED_MAX = 1000  # distinct warnings remembered, so each is logged once


@dataclass
class Followed:
    position: Position
    fd: int
    gone_since: float | None = None  # when its name stopped leading to it


@dataclass
class Read:
    """Whole lines read past an offset, and the state to commit once they are delivered."""

    lines: list[bytes]
    end: int
    skipping: bool
    too_large: int


@dataclass
class Stats:
    """What the tailer did, read by the collector on the event loop (hence the lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: Counter[str] = field(default_factory=Counter)  # accepted, rejected
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    # Batches, by the intake's reason: every reason there from the start, at 0.
    refused: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(REFUSALS, 0)))
    events: Counter[str] = field(default_factory=Counter)  # rotated, truncated, bytes
    files: int = 0
    behind: int = 0  # bytes written to the files and not yet read


@dataclass
class Settings:
    batch_lines: int = 1000
    max_line_bytes: int = 1 << 20
    max_files: int = 100
    start_at_end: bool = False  # files found on the very first start, with no state yet
    rotate_wait: float = 5.0


class Tailer:
    def __init__(self, patterns: Sequence[str], submit: Callable[[list[bytes]], Submitted],
                 offsets: Offsets, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Plain str: glob returns a literal pattern itself, and a config's `ConfigPath`
        # would reach the offsets file, which msgspec cannot encode.
        self.patterns = [str(p) for p in patterns]
        self.submit, self.offsets = submit, offsets
        self.settings, self.clock = settings, clock
        self.files: dict[str, Followed] = {}
        self.stats = Stats()
        self._saved: dict[str, Position] | None = None
        self._first = True
        self._warned: set[str] = set()

    def open(self) -> None:
        """Read the saved offsets (in the worker thread: it is file I/O)."""
        self._saved = self.offsets.load()
        self._first = self._saved is None
        self.offsets.discard_temporary()

    def close(self) -> None:
        for followed in self.files.values():
            os.close(followed.fd)
        self.files.clear()

    def poll(self) -> str:
        """One pass over every file; '' when all were read to their last whole line, else
        the reason ingestion refused a batch (retry later: nothing was lost)."""
        self._discover()
        for key, followed in list(self.files.items()):
            if refused := self._drain(followed):
                return refused
            if followed.gone_since is not None and \
                    self.clock() - followed.gone_since >= self.settings.rotate_wait:
                os.close(followed.fd)
                del self.files[key]
                self._save()
        self._measure()
        return ""

    # -- finding files --------------------------------------------------------------------

    def _discover(self) -> None:
        found: set[str] = set()
        for path in sorted({p for pattern in self.patterns for p in glob.glob(pattern)}):  # noqa: PTH207 - globs from the config
            if (key := self._follow(path)) is not None:
                found.add(key)
        now = self.clock()
        for key, followed in self.files.items():
            if key not in found and followed.gone_since is None:
                followed.gone_since = now  # renamed away or deleted: read its end first
        self._saved, self._first = {}, False  # positions of files not found are forgotten

    def _follow(self, path: str) -> str | None:
        try:
            st = Path(path).stat()
        except OSError:
            return None  # gone between glob and stat
        if not stat.S_ISREG(st.st_mode):
            return None
        key = f"{st.st_dev}:{st.st_ino}"
        if key in self.files:
            self.files[key].position.path = path
            self.files[key].gone_since = None
            return key
        if len(self.files) >= self.settings.max_files:
            self._warn("max_files", "ndjson_file: more files than max_files; ignoring the rest",
                       path=path, max_files=self.settings.max_files)
            return None
        return self._open(path, st, key)

    def _open(self, path: str, st: os.stat_result, key: str) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._warn(f"open:{path}", "ndjson_file: cannot open a file", path=path,
                       error=exc.strerror)
            return None
        position = (self._saved or {}).get(key) or Position(
            dev=st.st_dev, ino=st.st_ino, path=path,
            offset=st.st_size if self._first and self.settings.start_at_end else 0)
        if any(f.position.path == path for f in self.files.values()):
            self._count("rotated")  # a new file under a name we were reading
        position.path = path
        self.files[key] = Followed(position, fd)
        return key

    # -- reading --------------------------------------------------------------------------

    def _drain(self, followed: Followed) -> str:
        while True:
            read = self._read(followed)
            position = followed.position
            if read.end == position.offset and not read.lines:
                return ""
            if read.lines:
                result = self.submit(read.lines)
                if result.refused:
                    with self.stats.lock:
                        self.stats.refused[result.refused] += 1
                    return result.refused
                self._delivered(result, read)
            elif read.too_large:
                self._delivered(Submitted(), read)
            self._count("bytes", read.end - position.offset)
            position.offset, position.skipping = read.end, read.skipping
            self._save()

    def _read(self, followed: Followed) -> Read:
        position, limit = followed.position, self.settings.max_line_bytes
        size = os.fstat(followed.fd).st_size
        if size < position.offset:  # truncated (copytruncate): read it again from the start
            position.offset, position.skipping = 0, False
            self._count("truncated")
            self._save()
        read = Read([], position.offset, position.skipping, 0)
        want = CHUNK
        while len(read.lines) < self.settings.batch_lines and read.end < size:
            data = os.pread(followed.fd, want, read.end)
            if not data:
                break
            if read.skipping:
                self._skip(read, data)
                continue
            if consumed := self._split(data, read):
                read.end += consumed
                want = CHUNK
            elif len(data) > limit:  # a line already too long, its newline not in sight
                read.end, read.skipping = read.end + len(data), True
            elif len(data) < want:
                break  # the last line has no newline yet: wait for it
            else:
                want = limit + 1  # a line longer than a chunk: read it whole
        return read

    def _split(self, data: bytes, read: Read) -> int:
        """Append data's whole lines to read.lines (up to a batch); the bytes they took."""
        start, limit = 0, self.settings.max_line_bytes
        while len(read.lines) < self.settings.batch_lines:
            newline = data.find(b"\n", start)
            if newline == -1:
                break
            if newline - start > limit:
                read.too_large += 1
            elif data[start:newline].strip():
                read.lines.append(data[start:newline])
            start = newline + 1
        return start

    def _skip(self, read: Read, data: bytes) -> None:
        newline = data.find(b"\n")
        if newline == -1:
            read.end += len(data)
            return
        read.end += newline + 1
        read.skipping = False
        read.too_large += 1

    # -- bookkeeping ----------------------------------------------------------------------

    def _delivered(self, result: Submitted, read: Read) -> None:
        with self.stats.lock:
            self.stats.records["accepted"] += result.accepted
            self.stats.records["rejected"] += result.rejected + read.too_large
            self.stats.rejected.update(result.reasons)
            if read.too_large:
                self.stats.rejected[TOO_LARGE] += read.too_large

    def _count(self, what: str, amount: int = 1) -> None:
        with self.stats.lock:
            self.stats.events[what] += amount

    def _measure(self) -> None:
        behind = 0
        for followed in self.files.values():
            try:
                behind += max(0, os.fstat(followed.fd).st_size - followed.position.offset)
            except OSError:
                continue
        with self.stats.lock:
            self.stats.files, self.stats.behind = len(self.files), behind

    def _save(self) -> None:
        self.offsets.save({k: f.position for k, f in self.files.items()})

    def _warn(self, key: str, message: str, **fields: object) -> None:
        if len(self._warned) >= WARNED_MAX:  # churning unreadable names: warn afresh
            self._warned.clear()
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, **fields)
