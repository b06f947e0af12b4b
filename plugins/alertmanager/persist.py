"""The held set on disk: SQLite (WAL), one row per episode and per acknowledgement, so a
change costs a write of what changed, not of everything held (a storm of 10,000 alerts)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import structlog

from agent.sqlite import SqliteStore, connect

log = structlog.get_logger("inferwatch")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS episodes (key TEXT PRIMARY KEY, held BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS acked (url TEXT NOT NULL, key TEXT NOT NULL, "
    "version INTEGER NOT NULL, fired INTEGER NOT NULL, PRIMARY KEY (url, key))",
)
Episodes = dict[str, bytes | None]  # key -> the encoded Held, or None: deleted
Acks = dict[tuple[str, str], tuple[int, bool]]  # (url, key) -> (version, fired)


class HeldDb(SqliteStore):
    _what = "alertmanager state"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unreadable = 0

    def open(self) -> None:
        """Open or create; a file SQLite cannot read is set aside (counted), a fresh one used."""
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            self.close()
            self.unreadable += 1
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(f"{aside}{suffix}")
            log.error("alertmanager state unreadable; set aside, starting empty",
                      path=str(self.path), moved_to=str(aside), error=str(exc)[:200])
            self._connect()

    def _connect(self) -> None:
        self._db = connect(self.path)
        if self._conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def load(self, urls: list[str]) -> tuple[list[tuple[str, bytes]], list[tuple[str, str, int,
                                                                                  bool]]]:
        """Every episode, and the acknowledgements of the URLs still configured."""
        with self._transaction():
            marks = ",".join("?" * len(urls))
            self._conn.execute(f"DELETE FROM acked WHERE url NOT IN ({marks})",  # noqa: S608
                               urls)
        episodes = self._conn.execute("SELECT key, held FROM episodes").fetchall()
        acks = self._conn.execute("SELECT url, key, version, fired FROM acked").fetchall()
        return episodes, [(u, k, int(v), bool(f)) for u, k, v, f in acks]

    def write(self, episodes: Episodes, acks: Acks) -> None:
        """One transaction (one fsync) for a batch of changes."""
        gone = [(k,) for k, held in episodes.items() if held is None]
        with self._transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO episodes (key, held) VALUES (?, ?)",
                [(k, held) for k, held in episodes.items() if held is not None])
            self._conn.executemany("DELETE FROM episodes WHERE key = ?", gone)
            self._conn.executemany("DELETE FROM acked WHERE key = ?", gone)
            self._conn.executemany(
                "INSERT OR REPLACE INTO acked (url, key, version, fired) VALUES (?, ?, ?, ?)",
                [(u, k, v, int(f)) for (u, k), (v, f) in acks.items() if k not in episodes
                 or episodes[k] is not None])


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.json.encode(value)
