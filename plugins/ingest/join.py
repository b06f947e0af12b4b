"""Late labels: predictions wait for their labels, and labels for their predictions, on disk.

Keyed by (model, request id) in SQLite under state_dir (a waiting prediction keeps its model
version, prediction and time, not its features), so a label arriving days later (or
before its prediction) still joins, across agent restarts, within the TTL. A repeated label
for the same request replaces the earlier one: the pair is returned again, marked as a
replacement, and the prediction stays until its TTL so later corrections still join.
Methods block: call them from a worker thread.

Bounded on disk, not only in rows (`add_bounded`): a value bigger than `max_value_bytes` is
not stored; the file never grows past `max_bytes`; and while the filesystem has less than
`reserve_bytes` free it does not grow at all, so the outbox beside it still has room. When
full, the oldest waiting rows make room. Every record left out is counted.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from agent.model import Label, Sample
from agent.sqlite import SqliteStore, connect, is_full

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (model TEXT, request_id TEXT, body BLOB, "
    "expires REAL, labelled INTEGER DEFAULT 0, PRIMARY KEY (model, request_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS labels (model TEXT, request_id TEXT, body BLOB, "
    "expires REAL, PRIMARY KEY (model, request_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS predictions_expiry ON predictions (expires)",
    "CREATE INDEX IF NOT EXISTS labels_expiry ON labels (expires)",
)
# A waiting prediction keeps only what a join needs: [model_version, prediction, ts] as JSON.
_INSERT = ("{verb} INTO predictions SELECT value ->> 0, value ->> 1, value -> 2, ?, 0 "
           "FROM json_each(?)")
_WAL_LIMIT = 1 << 20  # the WAL is checkpointed, and truncated back, at about this size
_CHUNK = 256 << 10  # bytes of values per transaction (a big row takes a page or more)
_ROW = 64  # what a row costs besides its keys and value
_SCALARS = (int, float, bool, type(None))


@dataclass(frozen=True)
class Joined:
    sample: Sample
    label: Label
    replaces: bool  # a newer label for a request that was already joined


class LabelJoin(SqliteStore):
    _what = "label store"

    def __init__(self, path: Path, *, ttl: float, max_waiting: int, max_bytes: int = 1 << 30,
                 reserve_bytes: int = 1 << 30, max_value_bytes: int = 4096) -> None:
        self.path, self.ttl, self.max_waiting = path, ttl, max_waiting
        self.max_bytes, self.reserve_bytes = max_bytes, reserve_bytes
        self.max_value_bytes = max_value_bytes
        self._page = 4096
        self.counts: Counter[str] = Counter()
        self._db = None
        self._slim = msgspec.msgpack.Decoder(tuple[str, Any, str | float | None])
        self._slim_json = msgspec.json.Decoder(tuple[str, Any, str | float | None])
        self._json = msgspec.json.Encoder().encode
        self._label = msgspec.msgpack.Decoder(Label)
        self._encode = msgspec.msgpack.Encoder().encode

    def open(self) -> None:
        # NORMAL: a crash loses nothing; a power cut at most the last batch of a sampled stream.
        self._db = connect(self.path, sync="normal")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
        self._db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_LIMIT // self._page}")
        self._grow_to(self.max_bytes)

    def add_bounded(self, records: Sequence[Sample | Label], now: float | None = None
                    ) -> list[Joined]:
        """add() within the bounds on disk, in transactions of at most _CHUNK bytes (a whole
        transaction sits in the WAL until it commits): a full store makes room (the oldest
        go), and what still does not fit is counted, never raised."""
        joined: list[Joined] = []
        for chunk in _chunks(self._small(records)):
            joined += self._add_chunk(chunk, now)
        return joined

    def _add_chunk(self, records: Sequence[Sample | Label], now: float | None
                   ) -> list[Joined]:
        room = self._disk_free() - _WAL_LIMIT  # the WAL grows by up to this before a checkpoint
        self._grow_to(self.max_bytes if room >= self.reserve_bytes else 0)
        joined = self._try_add(records, now)
        if joined is not None:
            return joined
        self._make_room(len(records))
        return self._add_newest(records, now)

    def _try_add(self, records: Sequence[Sample | Label], now: float | None
                 ) -> list[Joined] | None:
        """add(), or None when the store is full (its WAL emptied, for the next try)."""
        try:
            return self.add(records, now)
        except sqlite3.Error as exc:
            if not is_full(exc):
                raise
        self._checkpoint()
        return None

    def _checkpoint(self) -> None:
        """Empty the WAL file: a failed transaction's pages stay in it, taking the disk."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _add_newest(self, records: Sequence[Sample | Label], now: float | None
                    ) -> list[Joined]:
        """As much of the batch as fits, the newest part: each failure counts the older half
        as lost (`full_*`) and tries the rest."""
        while records:
            joined = self._try_add(records, now)
            if joined is not None:
                return joined
            older = max(1, len(records) // 2)
            for record in records[:older]:
                self.counts[f"full_{_table(record)}"] += 1
            records = records[older:]
        return []

    def _small(self, records: Sequence[Sample | Label]) -> list[tuple[Sample | Label, int]]:
        """The records whose stored value fits `max_value_bytes`, with their sizes; the
        others counted."""
        cap = self.max_value_bytes
        sized = [(r, _size(r)) for r in records]
        for record, size in sized:
            if size > cap:
                self.counts[f"too_large_{_table(record)}"] += 1
        return [(r, size) for r, size in sized if size <= cap]

    def size_bytes(self) -> int:
        """The database's size (pages in use or free for reuse), not counting its WAL."""
        return int(self._conn.execute("PRAGMA page_count").fetchone()[0]) * self._page

    def _disk_free(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def _grow_to(self, limit: int) -> None:
        """Let the file grow to `limit` bytes (SQLite never shrinks the cap below the file:
        0 means \"no bigger than now\"; freed pages are still reused)."""
        self._conn.execute(f"PRAGMA max_page_count = {max(1, limit // self._page)}")

    def _make_room(self, rows: int) -> None:
        """Delete the oldest waiting rows of both tables (a tenth, at least `rows`), counted."""
        for table in ("predictions", "labels"):
            count = max(rows, self._rows(table) // 10)
            try:
                with self._transaction() as db:
                    self.counts[f"dropped_{table}"] += db.execute(
                        f"DELETE FROM {table} WHERE (model, request_id) IN "  # noqa: S608 - fixed names
                        f"(SELECT model, request_id FROM {table} ORDER BY expires LIMIT ?)",
                        (count,)).rowcount
            except sqlite3.Error as exc:
                if not is_full(exc):  # a delete can need a page of WAL too
                    raise

    def add(self, records: Sequence[Sample | Label], now: float | None = None) -> list[Joined]:
        """Store a batch (one transaction); return the pairs it completes.

        Predictions go in with set-based statements (a batch of 5,000 costs a few C loops,
        not 15,000 Python round trips); labels, fewer and later, one by one.
        """
        now = time.time() if now is None else now
        expires = now + self.ttl
        joined: list[Joined] = []
        run: dict[tuple[str, str], Sample] = {}  # consecutive predictions, in arrival order
        with self._transaction() as db:
            for record in records:
                if isinstance(record, Sample):
                    key = (record.model, record.request_id)
                    if key in run:
                        self.counts["duplicate_predictions"] += 1  # the newer one replaces it
                        del run[key]
                    run[key] = record
                    continue
                if run:
                    joined += self._samples_in(db, run, expires)
                    run = {}
                pair = self._label_in(db, record, now)
                if pair is not None:
                    joined.append(pair)
            if run:
                joined += self._samples_in(db, run, expires)
        self.counts["joined"] += len(joined)
        return joined

    def _samples_in(self, db: sqlite3.Connection, samples: dict[tuple[str, str], Sample],
                    expires: float) -> list[Joined]:
        """Set-based: the batch goes in as one JSON parameter, so SQLite walks it in C without
        the GIL (executemany binds each row under it, and the ingest loop waits)."""
        batch = self._json([(key[0], key[1], (s.model_version, s.prediction, s.ts))
                            for key, s in samples.items()])
        found: dict[tuple[str, str], Any] = {}
        if db.execute("SELECT EXISTS (SELECT 1 FROM labels)").fetchone()[0]:
            found = {(model, rid): body for model, rid, body in db.execute(
                "SELECT l.model, l.request_id, l.body FROM json_each(?) j JOIN labels l "
                "ON l.model = j.value ->> 0 AND l.request_id = j.value ->> 1 "
                "WHERE l.expires >= ?", (batch, expires - self.ttl))}
        inserted = db.execute(_INSERT.format(verb="INSERT OR IGNORE"), (expires, batch)).rowcount
        if inserted < len(samples):  # repeated request ids: the newer prediction replaces
            self.counts["duplicate_predictions"] += len(samples) - inserted
            db.execute(_INSERT.format(verb="INSERT OR REPLACE"), (expires, batch))
        if not found:
            return []
        db.executemany("UPDATE predictions SET labelled = 1 WHERE model = ? AND request_id = ?",
                       list(found))
        db.executemany("DELETE FROM labels WHERE model = ? AND request_id = ?", list(found))
        self.counts["labels_joined"] += len(found)
        return [Joined(samples[key], self._label.decode(body), replaces=False)
                for key, body in found.items()]

    def _label_in(self, db: sqlite3.Connection, label: Label, now: float) -> Joined | None:
        """Join a label, or let it wait; count what became of it (`labels_<outcome>`)."""
        key = (label.model, label.request_id)
        row = db.execute("SELECT body, labelled, expires FROM predictions WHERE model = ? AND "
                         "request_id = ?", key).fetchone()
        if row is None:  # the prediction has not come yet: the label waits (the newest wins)
            if db.execute("SELECT 1 FROM labels WHERE model = ? AND request_id = ?",
                          key).fetchone():
                self.counts["labels_duplicate"] += 1  # the waiting one is replaced
            db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?)",
                       (*key, self._encode(label), now + self.ttl))
            return None
        if row[2] < now:  # older than label_ttl, not purged yet: too late to join
            self.counts["labels_expired"] += 1
            return None
        db.execute("UPDATE predictions SET labelled = 1 WHERE model = ? AND request_id = ?", key)
        self.counts["labels_duplicate" if row[1] else "labels_joined"] += 1
        return Joined(self._waiting(label, row[0]), label, replaces=bool(row[1]))

    def _waiting(self, label: Label, body: str | bytes) -> Sample:
        if isinstance(body, str):  # JSON now; msgpack as earlier builds wrote it
            version, prediction, ts = self._slim_json.decode(body)
        else:
            try:
                version, prediction, ts = self._slim.decode(body)
            except msgspec.DecodeError:  # the earliest format: a whole Sample
                return msgspec.msgpack.decode(body, type=Sample)
        return Sample(model=label.model, request_id=label.request_id, prediction=prediction,
                      model_version=version, ts=ts)

    def expire(self, now: float | None = None) -> None:
        """Drop what waited past the TTL (counted), then trim to the bound (oldest first)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            self.counts["expired_predictions"] += db.execute(
                "DELETE FROM predictions WHERE expires < ? AND labelled = 0", (now,)).rowcount
            db.execute("DELETE FROM predictions WHERE expires < ?", (now,))
            self.counts["unmatched_labels"] += db.execute(
                "DELETE FROM labels WHERE expires < ?", (now,)).rowcount
            for table in ("predictions", "labels"):
                excess = self._rows(table) - self.max_waiting
                if excess > 0:
                    self.counts[f"dropped_{table}"] += db.execute(
                        f"DELETE FROM {table} WHERE (model, request_id) IN "  # noqa: S608 - fixed names
                        f"(SELECT model, request_id FROM {table} ORDER BY expires LIMIT ?)",
                        (excess,)).rowcount

    def waiting(self, table: str = "predictions") -> int:
        """Predictions without a label yet, or labels without their prediction."""
        where = " WHERE labelled = 0" if table == "predictions" else ""
        return self._rows(table, where)

    def _rows(self, table: str, where: str = "") -> int:
        if table not in ("predictions", "labels"):
            raise ValueError(table)
        row = self._conn.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()  # noqa: S608
        return int(row[0])


def _table(record: Sample | Label) -> str:
    return "predictions" if isinstance(record, Sample) else "labels"


def _size(record: Sample | Label) -> int:
    """About what the record costs stored: its keys and the value kept with them."""
    value = record.prediction if isinstance(record, Sample) else record.label
    size = len(record.model) + len(record.request_id) + _value_size(value)
    return size + _value_size(record.ts)


def _value_size(value: object) -> int:
    if type(value) in _SCALARS:
        return 8
    if type(value) is str:
        return len(value)
    try:
        return len(msgspec.json.encode(value))
    except (TypeError, msgspec.EncodeError):
        return 0  # not JSON: add() refuses it as it always has


def _chunks(sized: list[tuple[Sample | Label, int]]) -> list[list[Sample | Label]]:
    """Consecutive runs of records holding at most _CHUNK bytes each (one at least)."""
    out: list[list[Sample | Label]] = [[]]
    total = 0
    for record, size in sized:
        if total + size > _CHUNK and out[-1]:
            out.append([])
            total = 0
        out[-1].append(record)
        total += size + _ROW
    return out if out[-1] else []
