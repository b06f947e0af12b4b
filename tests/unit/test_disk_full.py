"""A full disk, a full join and a corrupt outbox: the real error shows, the outbox keeps its
events, and every record or event that cannot be kept is counted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.model import Label, Sample
from agent.outbox import Outbox
from agent.sqlite import connect, is_full, transaction
from plugins.ingest.join import LabelJoin
from tests.diskfull import fill, small_fs

__all__ = ["small_fs"]  # the fixture, used by name below

EVENT = b'{"kind": "test"}' + b" " * 1000


def test_a_full_database_raises_its_own_error_and_leaves_no_transaction(tmp_path: Path) -> None:
    db = connect(tmp_path / "x.db")
    db.execute("CREATE TABLE t (b BLOB)")
    db.execute("PRAGMA max_page_count = 20")
    with pytest.raises(sqlite3.OperationalError) as raised:
        _fill_in_one_transaction(db)
    assert is_full(raised.value), raised.value  # was: "cannot rollback - no transaction"
    assert not db.in_transaction
    with transaction(db):  # usable at once
        db.execute("INSERT INTO t VALUES (x'00')")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_the_outbox_on_a_full_disk_keeps_its_events_and_recovers(small_fs: Path) -> None:
    outbox = Outbox(small_fs / "outbox.db", max_bytes=1 << 30, max_age=1e9)
    outbox.open()
    outbox.put([("t", EVENT)] * 100)
    ballast = fill(small_fs, 64 << 10)
    with pytest.raises(sqlite3.OperationalError) as raised:
        _put_until_full(outbox)
    assert is_full(raised.value), raised.value
    kept = outbox.depth
    assert kept >= 100
    ballast.unlink()
    outbox.put([("t", EVENT)])  # the sink retries its batch: it now goes in
    outbox.close()
    outbox.open()
    assert outbox.depth == kept + 1
    assert not outbox.dropped
    outbox.close()


def _fill_in_one_transaction(db: sqlite3.Connection) -> None:
    with transaction(db):
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", (b"x" * 10_000,))


def _put_until_full(outbox: Outbox) -> None:
    for _ in range(1000):
        outbox.put([("t", EVENT)] * 100)


def test_a_corrupt_outbox_carries_its_readable_events_over_and_counts_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, max_bytes=1 << 30, max_age=1e9)
    outbox.open()
    outbox.put([("t", b"%d" % i + b" " * 300) for i in range(200)])
    outbox.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[10 * 4096 + 8:11 * 4096] = b"\xff" * (4096 - 8)  # one leaf page of rows destroyed
    path.write_bytes(bytes(data))
    outbox.open()
    saved = outbox.depth
    assert 150 < saved < 200
    assert outbox.dropped["corrupt"] == 200 - saved
    rows = outbox.take(1000)
    numbers = [int(payload.split()[0]) for _, _, payload in rows]
    assert numbers == sorted(numbers)  # in their order, gaps where the page was
    assert list(tmp_path.glob("outbox.db.corrupt-*"))
    outbox.close()


def _join(path: Path, **bounds: int) -> LabelJoin:
    store = LabelJoin(path / "labels.db", ttl=1e9, max_waiting=10_000_000, **bounds)
    store.open()
    return store


def _predictions(n: int, size: int, start: int = 0) -> list[Sample | Label]:
    return [Sample(model="m", request_id=f"r{i}", prediction="p" * size)
            for i in range(start, start + n)]


def test_the_join_is_bounded_in_bytes_and_the_oldest_make_room(tmp_path: Path) -> None:
    store = _join(tmp_path, max_bytes=1 << 20, reserve_bytes=0)
    for batch in range(20):
        store.add_bounded(_predictions(500, 200, batch * 500), now=float(batch))
    assert store.size_bytes() <= 1 << 20
    assert store.counts["dropped_predictions"] > 0
    waiting = store.waiting()
    assert waiting + store.counts["dropped_predictions"] + store.counts["full_predictions"] \
        == 10_000
    # The newest still join.
    (pair,) = store.add_bounded([Label(model="m", request_id="r9999", label="p")], now=20.0)
    assert pair.sample.request_id == "r9999"
    store.close()


def test_a_huge_value_is_not_stored_and_is_counted(tmp_path: Path) -> None:
    store = _join(tmp_path, max_value_bytes=4096, reserve_bytes=0)
    records: list[Sample | Label] = [
        *_predictions(1, 1 << 20), *_predictions(1, 10, start=1),
        Label(model="m", request_id="x", label={"text": "y" * (1 << 20)}),
        Sample(model="m", request_id="z" * 5000, prediction=1)]
    store.add_bounded(records)
    assert store.waiting() == 1
    assert store.waiting("labels") == 0
    assert (store.counts["too_large_predictions"], store.counts["too_large_labels"]) == (2, 1)
    store.close()


def test_the_join_leaves_the_reserve_to_the_outbox(small_fs: Path) -> None:
    """The join stops growing while less than the reserve is free; the outbox still fits."""
    store = _join(small_fs, reserve_bytes=4 << 20)
    outbox = Outbox(small_fs / "outbox.db", max_bytes=1 << 30, max_age=1e9)
    outbox.open()
    for batch in range(40):
        store.add_bounded(_predictions(500, 1000, batch * 500))
    assert store.counts["dropped_predictions"] > 0  # it filled and made room, counted
    outbox.put([("t", EVENT)] * 2000)  # 2 MiB of events: within the reserve
    assert outbox.depth == 2000
    assert not outbox.dropped
    outbox.close()
    store.close()
