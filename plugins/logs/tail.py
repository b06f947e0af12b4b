"""Following files by glob through rotation, without losing or inventing lines.

A file is known by device + inode and a fingerprint (a hash of its first bytes), so a reused
inode is a new file. Rename-and-create: the renamed file stays open and is drained until it
has not grown for `rotate_wait`. Copytruncate: a size below our offset means truncation; the
copy, when the glob finds it, carries the original's fingerprint and is read from where the
original was left, so the lines written between our last read and the truncation still come.
Compressed rotations are never opened. Only whole lines leave: a partial last line (even one
split inside a UTF-8 character) is held until its newline; a line longer than `max_line` is
cut there, marked and counted, and the rest of it skipped. Blocking: run in a worker thread.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import stat
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

FINGERPRINT_BYTES = 256
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".z", ".br", ".7z")
TRUNCATED_MARK = b" [TRUNCATED]"
READ_SIZE = 1 << 20


# A whole line without its newline, and the file offset just after that newline (where a
# restart resumes once the line is delivered). A tuple: 100k of them a second.
Line = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    size: int  # how many of the first bytes it covers (0: an empty file, matches nothing)
    digest: str

    def matches(self, fd: int) -> bool:
        return self.size > 0 and fingerprint(fd, self.size) == self


def fingerprint(fd: int, size: int = FINGERPRINT_BYTES) -> Fingerprint:
    head = os.pread(fd, size, 0)
    return Fingerprint(len(head), hashlib.sha256(head).hexdigest()[:32])


@dataclass
class Tracked:
    """One open file: where we are, what is held, and whether it was rotated away."""

    path: str
    fd: int
    dev: int
    ino: int
    fp: Fingerprint
    offset: int  # after the last whole line handed out: where the held line starts
    pos: int = -1  # where the next read starts (offset + what the held line spans)
    held: bytes = b""  # the line being read, up to max_line + 1 bytes of it
    over: bool = False  # the held line is longer than max_line (the rest is read past)
    gone_since: float | None = None  # rotated away or deleted: drained until rotate_wait
    grew_at: float = 0.0
    read_at: float = 0.0  # when the file was last read to its end (for the lag figure)

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"

    def __post_init__(self) -> None:
        if self.pos < 0:
            self.pos = self.offset

    def reset(self, offset: int) -> None:
        self.offset = self.pos = offset
        self.held, self.over = b"", False


class Saved(msgspec.Struct):
    """A file's checkpoint: identity and the offset after its last delivered line."""

    path: str
    fp_size: int
    fp_digest: str
    offset: int


class Tailer:
    def __init__(self, patterns: Sequence[str], *, max_line: int, rotate_wait: float,
                 start_at_end: bool = False, exclude: Sequence[str] = (),
                 max_files: int = 1000, symlinks: str = "within") -> None:
        self.symlinks = symlinks
        # Plain str: glob hands a literal pattern back as it is, and a config's ConfigPath
        # would reach the checkpoint file.
        self.patterns = [str(p) for p in patterns]
        self.max_line, self.rotate_wait = max_line, rotate_wait
        self.max_files = max_files
        self.over_limit = 0  # files the globs found past max_files at the last scan
        self.start_at_end, self.exclude = start_at_end, tuple(exclude)
        self.files: dict[str, Tracked] = {}
        self.saved: dict[str, Saved] = {}  # checkpoints of files not (yet) open
        self.counts: Counter[str] = Counter()  # truncated lines, truncations, errors
        self._first_scan = True
        self._restored: list[Saved] = []

    def restore(self, saved: dict[str, Saved]) -> None:
        self.saved = dict(saved)
        self._restored = list(saved.values())

    def scan(self) -> None:
        """Open what the globs find that is not followed yet; notice rotations."""
        seen: set[str] = set()
        self.over_limit = 0
        for path in self._paths():
            try:
                st = Path(path).stat()
            except OSError:
                continue
            key = f"{st.st_dev}:{st.st_ino}"
            seen.add(key)
            if key in self.files:
                self._same_inode(self.files[key], path)
            else:
                self._open(path, st)
        self._notice_gone(seen)
        if self._first_scan:
            self._find_rotated()
        self._first_scan = False

    def _find_rotated(self) -> None:
        """Checkpointed files the globs no longer find were rotated while we were down (a
        crash mid-rotation): look for the same inode and fingerprint beside the old path and
        drain it from its offset, as if we had seen the rotation."""
        for key, saved in list(self.saved.items()):
            folder = Path(saved.path).parent
            try:
                dev = folder.stat().st_dev
                entries = [e for e in os.scandir(folder) if f"{dev}:{e.inode()}" == key]
            except OSError:
                continue
            for entry in entries:
                if entry.name.lower().endswith(COMPRESSED) or not entry.is_file():
                    continue
                before = len(self.files)
                self._open(entry.path, Path(entry.path).stat())
                if len(self.files) > before:
                    self.counts["rotated_found"] += 1
                    self.files[key].gone_since = time.monotonic()
        self.saved.clear()  # the rest are gone for good
        self._restored.clear()

    def read(self, budget: int) -> Iterator[tuple[Tracked, list[Line]]]:
        """Whole lines from every file, about `budget` bytes in all, oldest-rotated first."""
        now = time.monotonic()
        for tracked in sorted(self.files.values(), key=lambda t: t.gone_since is None):
            lines = self._read_file(tracked, budget, now)
            if lines:
                yield tracked, lines

    def close_drained(self) -> list[Tracked]:
        """Close rotated/deleted files that stayed at their end for `rotate_wait`."""
        now, closed = time.monotonic(), []
        for key, tracked in list(self.files.items()):
            if tracked.gone_since is None or now - max(tracked.gone_since, tracked.grew_at) \
                    < self.rotate_wait:
                continue
            if self.size(tracked) > tracked.pos or tracked.held:
                continue  # still has bytes: drained first
            self._close(key)
            closed.append(tracked)
        return closed

    def close(self) -> None:
        for key in list(self.files):
            self._close(key)

    def lag_bytes(self, tracked: Tracked) -> int:
        return max(self.size(tracked) - tracked.offset, 0)

    # -- internals

    def _paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.patterns:
            # Absolute patterns, which Path.glob does not take.
            for path in sorted(glob.glob(pattern)):  # noqa: PTH207
                if path.lower().endswith(COMPRESSED) or path.endswith(self.exclude):
                    continue
                if Path(path).is_file() and path not in found and self._allowed(pattern, path):
                    found.append(path)
        return found

    def _allowed(self, pattern: str, path: str) -> bool:
        """A symlink is followed only where `symlinks` allows: "within" (the default) when
        its target lies under the directory the glob starts from, so a link planted in a
        log folder cannot ship /etc/shadow; "follow" always (Kubernetes' container logs
        are links into /var/log/pods); "skip" never. Refusals are counted."""
        if self.symlinks == "follow" or not Path(path).is_symlink():
            return True
        if self.symlinks == "within" and (not glob.has_magic(pattern) or Path(path).resolve()
                                          .is_relative_to(Path(_glob_root(pattern)).resolve())):
            return True  # inside, or a path without wildcards: the link the user named
        self.counts["symlink_refused"] += 1
        return False

    def _same_inode(self, tracked: Tracked, path: str) -> None:
        if tracked.fp.size < FINGERPRINT_BYTES:  # a young file: its fingerprint grows
            tracked.fp = fingerprint(tracked.fd)
        if tracked.path != path and tracked.gone_since is None and Path(tracked.path).exists():
            return  # a hard link under another name
        tracked.path, tracked.gone_since = path, None  # back in the globs: not draining

    def _open(self, path: str, st: os.stat_result) -> None:
        if len(self.files) >= self.max_files:  # each costs a descriptor: bounded
            self.over_limit += 1
            return
        try:  # non-blocking: a FIFO swapped in after the glob's check would block the open
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            self.counts["open_error"] += 1
            return
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # a FIFO, a directory, a device: never read
            os.close(fd)
            self.counts["not_regular"] += 1
            return
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):  # replaced in between
            os.close(fd)
            return
        fp = fingerprint(fd)
        tracked = Tracked(path, fd, fst.st_dev, fst.st_ino, fp, self._start(fd, fst, fp),
                          grew_at=time.monotonic())
        self.files[tracked.key] = tracked

    def _start(self, fd: int, st: os.stat_result, fp: Fingerprint) -> int:
        """Where a newly found file is read from: its checkpoint if the identity matches, the
        offset of the file it is a copy of (copytruncate), else its start (or end, first scan
        with `start_at_end`)."""
        key = f"{st.st_dev}:{st.st_ino}"
        saved = self.saved.pop(key, None)
        if saved is not None and saved.fp_size and fingerprint(fd, saved.fp_size) \
                == Fingerprint(saved.fp_size, saved.fp_digest):
            return saved.offset if saved.offset <= st.st_size else 0
        if saved is not None:
            self.counts["inode_reused"] += 1
        for other in self.files.values():
            if other.fp.size and other.fp.matches(fd):
                self.counts["copies_followed"] += 1
                return min(other.offset, st.st_size)
        for known in self._restored:  # copied (and truncated) while we were down
            if known.fp_size and Fingerprint(known.fp_size, known.fp_digest).matches(fd):
                self.counts["copies_followed"] += 1
                return min(known.offset, st.st_size)
        if self._first_scan and self.start_at_end:
            return _line_start(fd, st.st_size)
        return 0

    def _notice_gone(self, seen: set[str]) -> None:
        now = time.monotonic()
        for key, tracked in self.files.items():
            if key in seen or tracked.gone_since is not None:
                continue
            tracked.gone_since = now

    def size(self, tracked: Tracked) -> int:
        try:
            return os.fstat(tracked.fd).st_size
        except OSError:
            return tracked.pos

    def _read_file(self, tracked: Tracked, budget: int, now: float) -> list[Line]:
        size = self.size(tracked)
        if size < tracked.pos:  # copytruncate (or someone emptied it): start over
            self.counts["truncations"] += 1
            tracked.reset(0)
        if size == tracked.pos:
            tracked.read_at = now
            return self._last_words(tracked, now)
        try:
            data = os.pread(tracked.fd, min(size - tracked.pos, max(budget, 1), READ_SIZE),
                            tracked.pos)
        except OSError:
            self.counts["read_error"] += 1
            return []
        tracked.grew_at = now
        if tracked.pos + len(data) >= size:
            tracked.read_at = now
        return self._split(tracked, data)

    def _last_words(self, tracked: Tracked, now: float) -> list[Line]:
        """A rotated file's unterminated last line, once the file is done (its writer moved
        on): shipped as a line rather than lost with the file."""
        if not tracked.held or tracked.gone_since is None \
                or now - max(tracked.gone_since, tracked.grew_at) < self.rotate_wait:
            return []
        line = self._finish(tracked, b"")
        tracked.offset = tracked.pos
        self.counts["unterminated"] += 1
        return [(line, tracked.pos)]

    def _split(self, tracked: Tracked, data: bytes) -> list[Line]:
        """The whole lines in held + data; the unfinished rest is held (its first
        max_line + 1 bytes: an over-long line is cut when its newline comes)."""
        base, limit, lines, i = tracked.pos, self.max_line, [], 0
        while (nl := data.find(b"\n", i)) >= 0:
            if tracked.held or tracked.over or nl - i > limit:
                piece = self._finish(tracked, data[i:min(nl, i + limit + 1)])
            else:
                piece = data[i:nl]
            lines.append((piece, base + nl + 1))
            i = nl + 1
        if i:
            tracked.offset = base + i
        if i < len(data):
            room = limit + 1 - len(tracked.held)
            tracked.held += data[i:i + room] if room > 0 else b""
            tracked.over = tracked.over or len(data) - i > room
        tracked.pos = base + len(data)
        return lines

    def _finish(self, tracked: Tracked, tail: bytes) -> bytes:
        whole = (tracked.held + tail)[:self.max_line + 1]
        over = tracked.over or len(whole) > self.max_line
        tracked.held, tracked.over = b"", False
        return self._cap(whole) if over else whole

    def _cap(self, data: bytes) -> bytes:
        self.counts["truncated_lines"] += 1
        cut = min(self.max_line, len(data))
        while 0 < cut < len(data) and data[cut] & 0xC0 == 0x80:  # never inside a character
            cut -= 1
        return data[:cut] + TRUNCATED_MARK

    def _close(self, key: str) -> None:
        tracked = self.files.pop(key)
        with contextlib.suppress(OSError):
            os.close(tracked.fd)


def _line_start(fd: int, size: int) -> int:
    """The offset after the last newline at or before `size` (0 if none in the last MiB)."""
    lo = max(size - READ_SIZE, 0)
    tail = os.pread(fd, size - lo, lo)
    nl = tail.rfind(b"\n")
    return lo + nl + 1 if nl >= 0 else 0


def _glob_root(pattern: str) -> str:
    """The directory a glob starts from: its path up to the first part with a wildcard."""
    parts = Path(pattern).parts
    first = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts) - 1)
    return str(Path(*parts[:first])) if first else "."
