"""Where each tailed file was read up to, kept in state_dir so a restart resumes there.

A file is known by its device and inode, not its name: a file renamed by rotation keeps its
place, and the new file created under the old name starts at its beginning. The state is
written whole to a temporary file and renamed over the old one, so a `kill -9` leaves either
the previous state or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger("inferwatch")
VERSION = 1


class Position(msgspec.Struct, kw_only=True):
    """One file's place: the byte after the last line handed to ingestion."""

    dev: int
    ino: int
    offset: int = 0
    path: str = ""  # the name it had when last seen (for people reading the state)
    skipping: bool = False  # inside a line longer than max_line_bytes: drop to its newline

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"


class _State(msgspec.Struct, kw_only=True):
    version: int = VERSION
    files: list[Position] = msgspec.field(default_factory=list)


_decoder = msgspec.json.Decoder(_State)
_encoder = msgspec.json.Encoder()


@dataclass
class Offsets:
    path: Path

    def load(self) -> dict[str, Position] | None:
        """The saved positions by key; None when there is no state yet (a first start). An
        unreadable state is logged and treated as none: reading again beats stopping."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ndjson_file: cannot read offsets; starting afresh",
                        path=str(self.path), error=exc.strerror)
            return None
        try:
            state = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            log.warning("ndjson_file: offsets file is damaged; starting afresh",
                        path=str(self.path), error=str(exc))
            return None
        return {p.key: p for p in state.files}

    def save(self, positions: dict[str, Position]) -> None:
        """Atomically replace the state: write, fsync, rename."""
        tmp = self.path.with_suffix(".tmp")
        data = _encoder.encode(_State(files=list(positions.values())))
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)

    def discard_temporary(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.with_suffix(".tmp").unlink()
