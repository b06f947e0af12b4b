"""Routing events to sinks, and durable delivery for the sinks that ask for it.

A sink's `SinkConfig` says which events it takes (`match` kind globs, `min_severity`); the bus
queues for it only those (`route_for`). A durable sink (class `durable = True`, config
`durable = true`) gets its own outbox, `<state_dir>/sinks/<plugin>-<sink>.sqlite`: the
supervisor commits each routed batch there (`put`), and `run` hands the oldest rows to
`sink.deliver()`. Returning acknowledges them (deleted); raising keeps them and retries after
a jittered exponential backoff; `PermanentDeliveryError` drops the events it names (counted
as `rejected`). The outbox's bounds (bytes, age) drop the oldest first, counted by reason.

A sink with its own wire format (`encodes`, the MQTT sink) has the rows of its `encode()`
committed instead of envelopes, and `deliver_rows()` says which rows were acknowledged: the
others stay, the read goes on past them, and a pass from the start comes after a growing delay
(held rows neither spin nor block those behind them). `sink.wake()` cuts a backoff short.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import structlog

from agent.backoff import Backoff
from agent.components import Acked, Sink
from agent.config import PluginConfig, SinkConfig
from agent.errors import NotReadyError, PermanentDeliveryError, UndeliverableError
from agent.metrics import Accumulator, PluginMetrics
from agent.model import Event
from agent.sinkmetrics import DELIVERED, DROPPED, FAILED, OLDEST, QUEUED
from agent.worker import Worker

if TYPE_CHECKING:  # sqlite3 is loaded only where a durable sink runs
    from agent.outbox import Row

T = TypeVar("T")
log = structlog.get_logger("inferwatch")

DROP_REASONS = ("full", "expired", "corrupt", "rejected")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_SINK_KEYS = ("match", "min_severity", "durable", "outbox_max_bytes", "outbox_max_age",
              "outbox_sync")
ROUTE_CACHE = 4096  # (kind, severity) decisions remembered per sink; kinds are few
IDLE_REFRESH = 5.0  # seconds between metric refreshes while nothing happens

Route = Callable[[Event], bool]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]|^\.")


class KindRoute:
    """A sink's `match` globs and `min_severity`, decided once per (kind, severity)."""

    def __init__(self, match: Sequence[str], min_severity: str) -> None:
        self.match, self.floor = tuple(match), SEVERITY_RANK[min_severity]
        self._seen: dict[tuple[str, str], bool] = {}

    def __call__(self, event: Event) -> bool:
        key = (event.kind, event.severity)
        hit = self._seen.get(key)
        if hit is None:
            hit = self.accepts(event.kind, str(event.severity))
            if len(self._seen) < ROUTE_CACHE:
                self._seen[key] = hit
        return hit

    def accepts(self, kind: str, severity: str) -> bool:
        if SEVERITY_RANK.get(severity, 0) < self.floor:
            return False
        return any(fnmatchcase(kind, glob) for glob in self.match)


def sink_settings(settings: PluginConfig) -> SinkConfig | None:
    """A sink plugin's routing and outbox keys: its SinkConfig, or the same keys on a config
    that does not (yet) subclass it; None for a config without them."""
    if isinstance(settings, SinkConfig):
        return settings
    keys = {f: getattr(settings, f) for f in _SINK_KEYS if hasattr(settings, f)}
    if "match" not in keys:
        return None
    keys["match"] = list(keys["match"])
    try:  # built from Python, a Struct checks no Literal: the two checked here
        if keys.get("min_severity", "info") not in SEVERITY_RANK:
            raise ValueError(f"min_severity {keys['min_severity']!r} is not a severity")
        if not all(isinstance(glob, str) for glob in keys["match"]):
            raise ValueError("match must be a list of kind globs")
        return SinkConfig(interval=settings.interval, timeout=settings.timeout, **keys)
    except (TypeError, ValueError) as exc:
        log.warning("sink settings ignored: not a SinkConfig's", error=str(exc))
        return None


def route_for(settings: PluginConfig) -> Route | None:
    """The filter the bus applies for a sink of this plugin; None: it takes every event."""
    found = sink_settings(settings)
    if found is None or (list(found.match) == ["*"] and found.min_severity == "info"):
        return None
    return KindRoute(found.match, found.min_severity)


def outbox_path(state_root: Path, plugin: str, sink: str) -> Path:
    """`<state_dir>/sinks/<plugin>-<sink>.sqlite`, names reduced to safe file characters."""
    return state_root / "sinks" / _SAFE.sub("_", f"{plugin}-{sink}.sqlite")


def durable_delivery(plugin: str, sink: object, settings: PluginConfig, state_root: Path,
                     store: PluginMetrics) -> DurableDelivery | None:
    """A delivery for a sink whose class is durable and whose config says `durable = true`."""
    found = sink_settings(settings)
    if not (isinstance(sink, Sink) and sink.durable and found is not None and found.durable):
        return None
    return DurableDelivery(plugin, sink, found, state_root, store)


class DurableDelivery:
    """One durable sink's outbox, its delivery loop and its series."""

    def __init__(self, plugin: str, sink: Sink, settings: SinkConfig, state_root: Path,
                 store: PluginMetrics, *, backoff: Backoff | None = None) -> None:
        self.plugin, self.sink, self.store = plugin, sink, store
        from agent.outbox import Outbox  # noqa: PLC0415 - sqlite3 only with a durable sink

        self.timeout = float(sink.deliver_timeout or settings.timeout)
        self.outbox = Outbox(outbox_path(state_root, plugin, sink.name),
                             max_bytes=settings.outbox_max_bytes,
                             max_age=float(settings.outbox_max_age), sync=settings.outbox_sync)
        self.legacy = None if sink.legacy_outbox is None else state_root / sink.legacy_outbox
        self.backoff = backoff or Backoff(1.0, 60.0)
        self.delivered = self.failed = 0
        self.wake = asyncio.Event()  # new rows, or the sink's wake()
        self._woken = asyncio.Event()  # the sink's wake() alone: cuts a backoff short
        self.kept = Kept(Backoff(self.backoff.base, self.backoff.cap))
        sink.delivery = self
        self.read_size = sink.read_size or sink.batch_size
        self._worker = Worker(f"{plugin}.{sink.name}.outbox")
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Event)
        self._opened = False
        self._failing: str | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._worker.call(fn, *args)

    async def open(self) -> None:
        """Idempotent: a sink restarted by its supervisor keeps its outbox open."""
        if not self._opened:
            await self._call(self.outbox.open)
            if self.legacy is not None:
                await self._call(self.outbox.adopt, self.legacy)
            self._opened = True
            self.publish()

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._call(self.outbox.close)
        self._worker.close()

    async def put(self, events: Sequence[Event]) -> None:
        """Commit a batch (one transaction); from here on a kill -9 loses none of it."""
        rows = (self._encode_rows(events) if self.sink.encodes
                else [(event.kind, self._encoder.encode(event)) for event in events])
        if rows:
            await self._call(self.outbox.put, rows)
            self.wake.set()
        self.publish()

    def _encode_rows(self, events: Sequence[Event]) -> list[tuple[str, bytes]]:
        rows: list[tuple[str, bytes]] = []
        for event in events:
            try:
                rows.extend(self.sink.encode(event))
            except UndeliverableError as exc:
                known = exc.reason in self.sink.drop_reasons
                self.outbox.dropped[exc.reason if known else "rejected"] += 1
        return rows

    def wake_now(self) -> None:
        """The sink's wake(): deliver at once, whatever the loop waits for."""
        self._woken.set()
        self.wake.set()

    async def run(self) -> None:
        """Deliver the oldest rows, batch after batch, for as long as the sink runs."""
        loop = asyncio.get_running_loop()
        while True:
            after = self.kept.cursor(loop.time())
            rows = await self._call(self.outbox.take, self.read_size, after)
            if rows and self.sink.encodes:
                await self._attempt_rows(rows)
            elif rows:
                await self._attempt(rows)
            else:
                await self._idle(self.kept.wait(loop.time()))
            self.publish()

    async def _idle(self, wait: float = IDLE_REFRESH) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.wake.wait()

    async def _attempt_rows(self, rows: list[Row]) -> None:
        """Acknowledge the rows the sink says arrived; keep the rest for a later pass."""
        try:
            async with asyncio.timeout(self.timeout):
                acked = await self.sink.deliver_rows(rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of deliver_rows() means "retry later"
            self.kept.restart()  # everything unacknowledged goes again
            await self._retry_later(exc)
            return
        if acked is None:
            await self._call(self.outbox.ack, rows[0][0], rows[-1][0])
            self._delivered(len(rows))
            return
        gone = await self._drop_rows(acked)
        seqs = sorted(acked.delivered)
        if len(seqs) + gone == len(rows):
            await self._call(self.outbox.ack, rows[0][0], rows[-1][0])
        elif seqs:
            await self._call(self.outbox.ack_each, seqs)
        if len(seqs) + gone < len(rows):
            self.kept.held(rows[-1][0], asyncio.get_running_loop().time(), acked.retry_at)
        if seqs:
            self._delivered(len(seqs))

    async def _drop_rows(self, acked: Acked) -> int:
        """Delete and count the rows the sink says can never be delivered."""
        gone = 0
        for reason, seqs in (acked.dropped or {}).items():
            if seqs:
                await self._call(self.outbox.ack_each, sorted(seqs))
                known = reason in self.sink.drop_reasons
                self.outbox.dropped[reason if known else "rejected"] += len(seqs)
                gone += len(seqs)
        return gone

    async def _attempt(self, rows: list[Row]) -> None:
        seqs, events = await self._decode(rows)
        if not events:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.sink.deliver(events)
        except asyncio.CancelledError:
            raise
        except PermanentDeliveryError as exc:
            await self._settle(seqs, events, exc)
        except Exception as exc:  # noqa: BLE001 - any failure of deliver() means "retry later"
            await self._retry_later(exc)
        else:
            await self._call(self.outbox.ack, rows[0][0], rows[-1][0])
            self._delivered(len(events))

    async def _decode(self, rows: list[Row]) -> tuple[dict[str, int], list[Event]]:
        """Events by id -> seq; a row that no longer decodes is dropped as `corrupt`."""
        seqs: dict[str, int] = {}
        events, bad = [], []
        for seq, _kind, payload in rows:
            try:
                event = self._decoder.decode(payload)
            except (msgspec.DecodeError, ValueError):
                bad.append(seq)
                continue
            seqs[event.id] = seq
            events.append(event)
        if bad:
            await self._call(self.outbox.ack_each, bad)
            self.outbox.dropped["corrupt"] += len(bad)
        return seqs, events

    async def _settle(self, seqs: dict[str, int], events: list[Event],
                      exc: PermanentDeliveryError) -> None:
        rejected = {e.id for e in exc.events if e.id in seqs}
        delivered = ({e.id for e in events} - rejected if exc.delivered is None
                     else {e.id for e in exc.delivered if e.id in seqs} - rejected)
        await self._call(self.outbox.ack_each, sorted(seqs[i] for i in rejected | delivered))
        self.outbox.dropped["rejected"] += len(rejected)
        self._delivered(len(delivered))
        if not rejected:  # a failure after partial progress: the rest after the backoff
            await self._retry_later(exc)
            return
        log.warning("sink refused events for good; dropped", plugin=self.plugin,
                    sink=self.sink.name, rejected=len(rejected), error=str(exc))

    def _delivered(self, count: int) -> None:
        self.delivered += count
        self.backoff.reset()
        if self._failing is not None:
            log.info("sink delivers again", plugin=self.plugin, sink=self.sink.name,
                     queued=self.outbox.depth)
        self._failing = None

    async def _retry_later(self, exc: Exception) -> None:
        self.failed += 1
        reason = type(exc).__name__
        # NotReadyError: the sink knows its receiver is down, says so itself, and will wake().
        if reason != self._failing and not isinstance(exc, NotReadyError):  # one line per kind
            self._failing = reason
            log.warning("sink delivery failed; events wait in its outbox", plugin=self.plugin,
                        sink=self.sink.name, error=str(exc) or reason, queued=self.outbox.depth)
        self.publish()
        self._woken.clear()
        with contextlib.suppress(TimeoutError):  # the sink's wake() ends it early
            async with asyncio.timeout(self.backoff.next()):
                await self._woken.wait()

    def publish(self) -> None:
        """Commit this sink's series into its plugin's snapshot (cheap: figures in memory)."""
        if not self.sink.series:
            return
        outbox, labels = self.outbox, {"plugin": self.plugin, "sink": self.sink.name}
        acc = Accumulator()
        acc.add(QUEUED, outbox.depth, **labels)
        oldest = 0.0 if outbox.oldest is None else max(0.0, time.time() - outbox.oldest)
        acc.add(OLDEST, oldest, **labels)
        acc.add(DELIVERED, self.delivered, **labels)
        acc.add(FAILED, self.failed, **labels)
        for reason in (*DROP_REASONS, *self.sink.drop_reasons):
            acc.add(DROPPED, outbox.dropped[reason], **labels, reason=reason)
        self.store.commit(self.sink.name, acc)


class Kept:
    """Rows a row sink left unacknowledged: the read goes on past them (a cursor), and a pass
    from the start comes after a growing delay, reset once a pass keeps nothing."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.after = 0  # read after this seq; 0: from the start
        self.retry_at: float | None = None  # loop time of the next pass from the start
        self._since_retry = False

    def held(self, last: int, now: float, retry_at: float | None = None) -> None:
        """Rows up to `last` were read and some kept: read on after it, and from the start
        at `retry_at` (the sink's) or after the next delay."""
        self.after, self._since_retry = last, True
        if retry_at is not None:
            self.retry_at = retry_at
        elif self.retry_at is None:
            self.retry_at = now + self.backoff.next()

    def restart(self) -> None:
        """A failed batch: read from the start again (what was kept goes too)."""
        self.after = 0

    def cursor(self, now: float) -> int:
        if self.retry_at is not None and now >= self.retry_at:
            self.after, self.retry_at, self._since_retry = 0, None, False
        return self.after

    def wait(self, now: float) -> float:
        """At the end of the outbox: how long to idle; a pass that kept nothing resets."""
        if self.retry_at is None:
            if not self._since_retry:
                self.backoff.reset()
            return IDLE_REFRESH
        return max(0.0, min(IDLE_REFRESH, self.retry_at - now))
