"""Late labels: predictions wait for their labels, and labels for their predictions, on disk.

Keyed by (model, request id) in SQLite under state_dir, so a label arriving days later (or
before its prediction) still joins, across agent restarts, within the TTL. A repeated label
for the same request replaces the earlier one: the pair is returned again, marked as a
replacement, and the prediction stays until its TTL so later corrections still join.
Methods block: call them from a worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from agent.model import Label, Sample
from agent.sqlite import SqliteStore, connect

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (model TEXT, request_id TEXT, body BLOB, "
    "expires REAL, labelled INTEGER DEFAULT 0, PRIMARY KEY (model, request_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS labels (model TEXT, request_id TEXT, body BLOB, "
    "expires REAL, PRIMARY KEY (model, request_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS predictions_expiry ON predictions (expires)",
    "CREATE INDEX IF NOT EXISTS labels_expiry ON labels (expires)",
)


@dataclass(frozen=True)
class Joined:
    sample: Sample
    label: Label
    replaces: bool  # a newer label for a request that was already joined


class LabelJoin(SqliteStore):
    _what = "label store"

    def __init__(self, path: Path, *, ttl: float, max_waiting: int) -> None:
        self.path, self.ttl, self.max_waiting = path, ttl, max_waiting
        self.counts: Counter[str] = Counter()
        self._db = None
        self._sample = msgspec.msgpack.Decoder(Sample)
        self._label = msgspec.msgpack.Decoder(Label)
        self._encode = msgspec.msgpack.Encoder().encode

    def open(self) -> None:
        # NORMAL: a crash loses nothing; a power cut at most the last batch of a sampled stream.
        self._db = connect(self.path, sync="normal")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def add(self, records: Sequence[Sample | Label], now: float | None = None) -> list[Joined]:
        """Store a batch (one transaction); return the pairs it completes, in order."""
        expires = (time.time() if now is None else now) + self.ttl
        joined: list[Joined] = []
        with self._transaction() as db:
            for record in records:
                pair = (self._sample_in(db, record, expires) if isinstance(record, Sample)
                        else self._label_in(db, record, expires))
                if pair is not None:
                    joined.append(pair)
        self.counts["joined"] += len(joined)
        return joined

    def _sample_in(self, db: sqlite3.Connection, sample: Sample, expires: float
                   ) -> Joined | None:
        key = (sample.model, sample.request_id)
        waiting = db.execute("SELECT body FROM labels WHERE model = ? AND request_id = ?",
                             key).fetchone()
        if db.execute("SELECT 1 FROM predictions WHERE model = ? AND request_id = ?",
                      key).fetchone():
            self.counts["duplicate_predictions"] += 1  # the newer one replaces it
        db.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?)",
                   (*key, self._encode(sample), expires, 1 if waiting else 0))
        if waiting is None:
            return None
        db.execute("DELETE FROM labels WHERE model = ? AND request_id = ?", key)
        return Joined(sample, self._label.decode(waiting[0]), replaces=False)

    def _label_in(self, db: sqlite3.Connection, label: Label, expires: float) -> Joined | None:
        key = (label.model, label.request_id)
        row = db.execute("SELECT body, labelled FROM predictions WHERE model = ? AND "
                         "request_id = ?", key).fetchone()
        if row is None:  # the prediction has not come yet: the label waits (the newest wins)
            db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?)",
                       (*key, self._encode(label), expires))
            return None
        db.execute("UPDATE predictions SET labelled = 1 WHERE model = ? AND request_id = ?", key)
        return Joined(self._sample.decode(row[0]), label, replaces=bool(row[1]))

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
