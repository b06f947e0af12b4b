"""A durable queue (SQLite, WAL) for at-least-once delivery, shared by every sink that needs one.

An event is committed here before it is sent and deleted only after the receiver acknowledged
it, so a broker outage or a kill -9 loses nothing up to the bounds. Writes are grouped: one
transaction (and one fsync) per batch, never per event. Bounded by bytes and by age; the
oldest go first and are counted. Methods block: call them from a worker thread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import structlog

from agent.sqlite import SqliteStore, connect

log = structlog.get_logger("inferwatch")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
)
"""
Row = tuple[int, str, bytes]


class Outbox(SqliteStore):
    _what = "outbox"

    def __init__(self, path: Path, *, max_bytes: int, max_age: float, sync: str = "full") -> None:
        self.path, self.max_bytes, self.max_age, self.sync = path, max_bytes, max_age, sync
        self.dropped: Counter[str] = Counter()
        self.depth = 0
        self.bytes = 0
        self.oldest: float | None = None
        self._db = None

    def open(self) -> None:
        """Open or create; a corrupt file is moved aside and a fresh one started with every
        event still readable from it; those that are not are counted (`corrupt`)."""
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            self.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(f"{aside}{suffix}")
            self._connect()
            saved, lost = self._salvage(aside)
            log.error("outbox file is corrupt; moved aside, starting a fresh one",
                      path=str(self.path), moved_to=str(aside), error=str(exc),
                      events_saved=saved, events_lost=lost if lost >= 0 else "unknown")

    def _salvage(self, aside: Path) -> tuple[int, int]:
        """Copy what can be read from a corrupt outbox; (saved, lost), lost -1 if unknowable."""
        rows: list[tuple[str, bytes, float]] = []
        held = -1
        try:
            old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
        except sqlite3.Error:
            return 0, -1
        with contextlib.closing(old):
            with contextlib.suppress(sqlite3.Error):
                held = int(old.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            rows = _readable(old)
        if rows:
            with self._transaction():
                self._conn.executemany(
                    "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)", rows)
        lost = max(held - len(rows), 0) if held >= 0 else -1
        self.dropped["corrupt"] += max(lost, 0) if held >= 0 else 1
        self._recount()
        return len(rows), lost

    def adopt(self, old: Path) -> int:
        """Move every row of an outbox file of an older layout (same table) into this one, in
        order and keeping its age, then delete that file: an upgrade delivers what waited.
        A corrupt one is moved aside and salvaged as at open(). Returns the rows moved."""
        if not old.exists() or old.resolve() == self.path.resolve():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(str(old))) as db:  # replays a left WAL
                if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise sqlite3.DatabaseError("quick_check failed")
                held = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                rows = _readable(db)
        except sqlite3.DatabaseError as exc:
            return self._adopt_corrupt(old, exc)
        if rows:
            with self._transaction():
                self._conn.executemany(
                    "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)", rows)
        self.dropped["corrupt"] += max(held - len(rows), 0)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{old}{suffix}").unlink(missing_ok=True)
        self._recount()
        log.info("outbox of an older layout moved", moved_from=str(old), path=str(self.path),
                 events=len(rows))
        return len(rows)

    def _adopt_corrupt(self, old: Path, exc: Exception) -> int:
        aside = old.with_name(f"{old.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{old}{suffix}")
            if part.exists():
                part.rename(f"{aside}{suffix}")
        saved, lost = self._salvage(aside)
        log.error("outbox file is corrupt; moved aside, starting a fresh one", path=str(old),
                  moved_to=str(aside), error=str(exc), events_saved=saved,
                  events_lost=lost if lost >= 0 else "unknown")
        return saved

    def _connect(self) -> None:
        db = self._db = connect(self.path, sync=self.sync)
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        db.execute(_SCHEMA)
        self._recount()

    def _recount(self) -> None:
        count, size, oldest = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(created) FROM outbox"
        ).fetchone()
        self.depth, self.bytes, self.oldest = count, size, oldest

    def put(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Commit a batch, trimmed to the bound in the same transaction: no reader (and no
        crash) ever sees the outbox over `max_bytes`, not even between the two."""
        now = time.time()
        total = self.bytes + sum(len(p) for _, p in rows)
        gone = 0
        with self._transaction():
            self._conn.executemany("INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
                                   [(topic, payload, now) for topic, payload in rows])
            if total > self.max_bytes:
                gone = self._trim_bytes(total - self.max_bytes)
        if gone:
            self._dropped("full", gone)  # recounts
        else:
            self.depth, self.bytes = self.depth + len(rows), total
            self.oldest = self.oldest or now

    def take(self, limit: int, after: int = 0) -> list[Row]:
        """The oldest `limit` entries after sequence number `after`, in order."""
        self.expire()
        cursor = self._conn.execute(
            "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit))
        return cursor.fetchall()

    def ack(self, first: int, last: int) -> None:
        """Delete entries first..last (acknowledged), in one transaction; O(batch), not O(depth)."""
        span = (first, last)
        with self._transaction():
            count, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox "
                "WHERE seq BETWEEN ? AND ?", span).fetchone()
            self._conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", span)
        self.depth, self.bytes = self.depth - count, self.bytes - size
        row = self._conn.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
        self.oldest = row[0] if row else None

    def ack_each(self, seqs: Sequence[int]) -> None:
        """Delete these entries only (the receiver refused the others in their window)."""
        with self._transaction():
            self._conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
        self._recount()

    def expire(self) -> None:
        if self.oldest is None or self.oldest >= time.time() - self.max_age:
            return
        with self._transaction():
            gone = self._conn.execute("DELETE FROM outbox WHERE created < ?",
                                      (time.time() - self.max_age,)).rowcount
        self._dropped("expired", gone)

    def _trim_bytes(self, excess: int) -> int:
        """Delete the oldest entries holding at least `excess` bytes (inside a transaction)."""
        cursor = self._conn.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq")
        freed, last = 0, None
        for seq, size in cursor:
            freed, last = freed + size, seq
            if freed >= excess:
                break
        cursor.close()
        if last is None:
            return 0
        gone: int = self._conn.execute("DELETE FROM outbox WHERE seq <= ?", (last,)).rowcount
        return gone

    def _dropped(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] += count
            log.warning("outbox bound reached; oldest events dropped", reason=reason,
                        dropped=count, path=str(self.path))
        self._recount()


def _whole(row: tuple[object, ...]) -> bool:
    """A row from a damaged page may come back with NULLs or wrong types: not an event."""
    topic, payload, created = row
    return (type(topic) is str and type(payload) is bytes and bool(payload)
            and type(created) is float)


def _readable(db: sqlite3.Connection) -> list[tuple[str, bytes, float]]:
    """Every whole row, in order, stepping over damaged pages (further each time one fails)."""
    rows: list[tuple[str, bytes, float]] = []
    try:
        top = int(db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0)
    except sqlite3.Error:
        top = 0
    after, step = 0, 1
    while True:
        start = after
        try:
            for seq, *row in db.execute("SELECT seq, topic, payload, created FROM outbox "
                                        "WHERE seq > ? ORDER BY seq", (after,)):
                after = seq
                if _whole(row):
                    rows.append((row[0], row[1], row[2]))
        except sqlite3.Error:
            step = 1 if after > start else step * 2
            if after + step > top:
                return rows
            after += step
        else:
            return rows
