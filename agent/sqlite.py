"""SQLite as the agent's durable stores use it: WAL, explicit transactions, one thread."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


def connect(path: Path, *, sync: str = "full") -> sqlite3.Connection:
    """Autocommit mode with WAL; `sync` is "full" (survives power loss) or "normal" (a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    return db


class SqliteStore:
    """The connection bookkeeping both durable stores share; subclasses open and use it."""

    _db: sqlite3.Connection | None = None
    _what = "store"

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self._what} is not open")
        return self._db

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One explicit transaction: in autocommit mode every statement would commit (and fsync).

    On an error the transaction is rolled back and the error itself goes on: SQLite may have
    rolled back already (SQLITE_FULL, SQLITE_IOERR do), and a failing ROLLBACK must not hide
    why. A failed COMMIT leaves nothing open either.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def rollback(db: sqlite3.Connection) -> None:
    """End any open transaction; quietly, as the caller is already handling an error."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def is_full(exc: BaseException) -> bool:
    """SQLITE_FULL: the disk, or the database's `max_page_count`, has no room left."""
    return isinstance(exc, sqlite3.Error) and exc.sqlite_errorcode == sqlite3.SQLITE_FULL
