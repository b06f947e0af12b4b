"""The core's durable delivery for sinks with rows of their own (the MQTT sink's shape):
encoded rows, partial acknowledgement with a read cursor, drops by the sink's reasons, wake(),
per-sink sync, and an outbox file of an older layout adopted on open."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.backoff import Backoff
from agent.components import Acked, Sink
from agent.config import PluginConfig, SinkConfig
from agent.delivery import DurableDelivery, outbox_path, sink_settings
from agent.errors import NotReadyError, UndeliverableError
from agent.metrics import PluginMetrics
from agent.model import Event
from agent.outbox import Outbox
from tests.helpers import poll_async

Row = tuple[int, str, bytes]


def _event(n: int, size: int = 0) -> Event:
    return Event(kind="k", source="s", host="h", data={"n": n, "pad": "x" * size})


class RowSink(Sink):
    """Rows `t/<n % 3>` with payload `n`; refuses the keys in `held`, raises while `down`."""

    durable = True
    encodes = True
    drop_reasons = ("too_large",)
    batch_size = 4

    def __init__(self) -> None:
        super().__init__("rows")
        self.got: list[tuple[str, bytes]] = []
        self.held: set[str] = set()
        self.big: set[bytes] = set()
        self.down = False
        self.retry_at: float | None = None

    def encode(self, event: Event) -> list[tuple[str, bytes]]:
        if len(event.data["pad"]) > 100:
            raise UndeliverableError("too_large")
        if event.data["n"] < 0:
            raise UndeliverableError("no_such_reason")
        n = event.data["n"]
        return [(f"t/{n % 3}", str(n).encode())]

    async def deliver_rows(self, rows: Sequence[Row]) -> Acked | None:
        if self.down:
            raise ConnectionError("down")
        if not self.held and not self.big:
            self.got.extend((key, payload) for _, key, payload in rows)
            return None
        ok = [r for r in rows if r[1] not in self.held and r[2] not in self.big]
        self.got.extend((key, payload) for _, key, payload in ok)
        big = [seq for seq, _, payload in rows if payload in self.big]
        return Acked([seq for seq, _, _ in ok], {"too_large": big}, self.retry_at)


def _delivery(tmp_path: Path, sink: Sink, backoff: Backoff | None = None,
              **settings: object) -> tuple[DurableDelivery, PluginMetrics]:
    store = PluginMetrics("p", 100)
    config = SinkConfig(**settings)  # type: ignore[arg-type]
    fast = backoff or Backoff(0.001, 0.004)
    return DurableDelivery("p", sink, config, tmp_path, store, backoff=fast), store


def _series(store: PluginMetrics) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(m.name, labels): v for m, values in store.items() for labels, v in values.items()}


async def _drain(delivery: DurableDelivery) -> None:
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()


async def test_a_row_sink_gets_its_own_rows_in_order(tmp_path: Path) -> None:
    sink = RowSink()
    delivery, store = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(n) for n in range(10)])
    await _drain(delivery)
    assert sink.got == [(f"t/{n % 3}", str(n).encode()) for n in range(10)]
    assert _series(store)[("inferwatch_sink_delivered_total", ("p", "rows"))] == 10
    await delivery.close()


async def test_undeliverable_events_are_dropped_by_the_sinks_reason(tmp_path: Path) -> None:
    sink = RowSink()
    delivery, store = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(0), _event(1, size=500), _event(-1), _event(2)])
    assert delivery.outbox.depth == 2
    await _drain(delivery)
    assert [p for _, p in sink.got] == [b"0", b"2"]
    series = _series(store)
    assert series[("inferwatch_sink_dropped_total", ("p", "rows", "too_large"))] == 1
    assert series[("inferwatch_sink_dropped_total", ("p", "rows", "rejected"))] == 1  # unknown
    await delivery.close()


async def test_rows_the_sink_drops_are_deleted_and_counted(tmp_path: Path) -> None:
    sink = RowSink()
    sink.big = {b"3", b"5"}
    delivery, store = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(n) for n in range(8)])
    await _drain(delivery)
    assert [p for _, p in sink.got] == [b"0", b"1", b"2", b"4", b"6", b"7"]
    assert _series(store)[("inferwatch_sink_dropped_total", ("p", "rows", "too_large"))] == 2
    assert delivery.delivered == 6
    await delivery.close()


async def test_kept_rows_neither_block_those_behind_them_nor_spin(tmp_path: Path) -> None:
    """Rows of a refused key stay; the read goes on past them; a pass from the start comes
    at the time the sink gave, and then they are sent."""
    sink = RowSink()
    sink.held = {"t/1"}
    loop = asyncio.get_running_loop()
    sink.retry_at = loop.time() + 3600  # not before the test lets it
    delivery, _ = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(n) for n in range(12)])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 4)  # 1, 4, 7, 10 kept
    others = [p for _, p in sink.got]
    assert others == [str(n).encode() for n in range(12) if n % 3 != 1]
    await delivery.put([_event(12)])  # new rows behind the cursor's end still go
    await poll_async(lambda: b"12" in [p for _, p in sink.got])
    assert delivery.kept.after > 0
    sink.held.clear()
    delivery.kept.retry_at = loop.time()  # the sink's time for a pass from the start
    sink.wake()
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    assert [p for _, p in sink.got][-4:] == [b"1", b"4", b"7", b"10"]
    await delivery.close()


async def test_kept_rows_retry_after_growing_delays_without_a_time(tmp_path: Path) -> None:
    sink = RowSink()
    sink.held = {"t/0"}
    delivery, _ = _delivery(tmp_path, sink)
    delivery.kept.backoff = Backoff(0.01, 0.08)
    await delivery.open()
    await delivery.put([_event(0)])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.kept.backoff.attempt >= 4)
    assert delivery.outbox.depth == 1  # still there, offered again and again
    sink.held.clear()
    await poll_async(lambda: delivery.outbox.depth == 0)
    await poll_async(lambda: delivery.kept.backoff.attempt == 0)  # a clean pass resets
    task.cancel()
    await delivery.close()


async def test_wake_cuts_a_backoff_short(tmp_path: Path) -> None:
    sink = RowSink()
    sink.down = True
    delivery, _ = _delivery(tmp_path, sink, backoff=Backoff(3600.0, 3600.0))
    await delivery.open()
    await delivery.put([_event(0)])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.failed == 1)  # now asleep for 30-60 minutes
    sink.down = False
    await asyncio.sleep(0)
    assert delivery.outbox.depth == 1
    sink.wake()  # e.g. the broker is back
    await poll_async(lambda: delivery.outbox.depth == 0, timeout=5)
    task.cancel()
    await delivery.close()


def test_wake_without_an_outbox_does_nothing() -> None:
    RowSink().wake()


async def test_sync_is_per_sink(tmp_path: Path) -> None:
    delivery, _ = _delivery(tmp_path, RowSink(), outbox_sync="normal")
    assert delivery.outbox.sync == "normal"
    assert _delivery(tmp_path, RowSink())[0].outbox.sync == "full"


def test_sync_is_kept_for_a_config_with_sink_keys_that_does_not_subclass() -> None:
    class Old(PluginConfig):
        match: tuple[str, ...] = ("*",)
        outbox_sync: str = "normal"

    found = sink_settings(Old())
    assert found is not None
    assert found.outbox_sync == "normal"


class LegacySink(RowSink):
    legacy_outbox = "old/box.db"


async def test_an_outbox_of_an_older_layout_is_adopted_in_order(tmp_path: Path) -> None:
    old = tmp_path / "old" / "box.db"
    box = Outbox(old, max_bytes=1 << 30, max_age=1e9)
    box.open()
    box.put([(f"t/{n}", str(n).encode()) for n in range(5)])
    created = box.oldest
    box.close()
    sink = LegacySink()
    delivery, _ = _delivery(tmp_path, sink)
    await delivery.open()
    assert delivery.outbox.depth == 5
    assert delivery.outbox.oldest == created  # its age is kept: the age bound still applies
    assert not old.exists()
    await delivery.put([_event(9)])
    await _drain(delivery)
    assert sink.got == [*[(f"t/{n}", str(n).encode()) for n in range(5)], ("t/0", b"9")]
    await delivery.close()
    again, _ = _delivery(tmp_path, LegacySink())  # nothing left to adopt twice
    await again.open()
    assert again.outbox.depth == 0
    await again.close()


async def test_a_corrupt_outbox_of_an_older_layout_is_moved_aside(tmp_path: Path) -> None:
    old = tmp_path / "old" / "box.db"
    old.parent.mkdir()
    old.write_bytes(b"this is not a database" * 100)
    delivery, _ = _delivery(tmp_path, LegacySink())
    await delivery.open()
    assert delivery.outbox.depth == 0
    assert not old.exists()
    assert list(old.parent.glob("box.db.corrupt-*"))
    assert outbox_path(tmp_path, "p", "rows").exists()
    await delivery.close()


def test_adopting_reads_what_a_killed_writer_left_in_its_wal(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    writer = Outbox(old, max_bytes=1 << 30, max_age=1e9)
    writer.open()
    writer.put([("t", b"1"), ("t", b"2")])  # committed to the WAL, never checkpointed
    new = Outbox(tmp_path / "new.db", max_bytes=1 << 30, max_age=1e9)
    new.open()
    try:
        assert new.adopt(old) == 2
        assert new.take(10) == [(1, "t", b"1"), (2, "t", b"2")]
    finally:
        writer.close()
        new.close()
    with pytest.raises(sqlite3.OperationalError):  # gone: the writer's file was deleted
        sqlite3.connect(f"file:{old}?mode=ro", uri=True).execute("SELECT 1 FROM outbox")


async def test_a_sink_reads_its_own_window_of_rows(tmp_path: Path) -> None:
    class Windowed(RowSink):
        def __init__(self) -> None:
            super().__init__()
            self.read_size = 3
            self.sizes: list[int] = []

        async def deliver_rows(self, rows: Sequence[Row]) -> Acked | None:
            self.sizes.append(len(rows))
            return await super().deliver_rows(rows)

    sink = Windowed()
    delivery, _ = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(n) for n in range(7)])
    await _drain(delivery)
    assert sink.sizes == [3, 3, 1]  # not batch_size (4)
    await delivery.close()


@pytest.mark.parametrize(("error", "warned"), [(NotReadyError, False), (ConnectionError, True)])
async def test_a_sink_that_reports_its_own_outage_gets_no_warning_from_the_core(
        tmp_path: Path, error: type[Exception], warned: bool) -> None:
    class Quiet(RowSink):
        async def deliver_rows(self, rows: Sequence[Row]) -> Acked | None:
            if self.down:
                raise error("broker down")
            return await super().deliver_rows(rows)

    sink = Quiet()
    sink.down = True
    delivery, _ = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(0)])
    with capture_logs() as logs:
        task = asyncio.create_task(delivery.run())
        await poll_async(lambda: delivery.failed >= 3)
        sink.down = False
        sink.wake()
        await poll_async(lambda: delivery.outbox.depth == 0)
        task.cancel()
    failed = [x for x in logs if x["event"].startswith("sink delivery failed")]
    assert len(failed) == (1 if warned else 0)
    await delivery.close()
