"""What every log output shares: its own durable outbox and the loop that drains it.

The pipeline commits chunks of redacted lines to the output's outbox (one SQLite row per
chunk, one transaction per batch) before the input's checkpoint moves; the sender reads the
oldest chunks, hands them to the receiver, and deletes them only once the receiver has them.
A receiver that is down costs nothing but waiting: the lines stay in the outbox (bounded by
bytes and age; what is dropped past the bound is counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from agent.components import Service
from agent.outbox import Outbox
from agent.supervisor import Backoff
from agent.worker import Worker

log = structlog.get_logger("inferwatch")
T = TypeVar("T")


class Chunk(msgspec.Struct, array_like=True):
    """Lines of one file read in one batch, as they ship."""

    input: str
    path: str
    ts: float  # when they were read (wall clock)
    lines: list[bytes]
    levels: list[str]  # per line; "" when unknown


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Chunk).decode


class OutputDown(Exception):  # noqa: N818 - a state, not a programming error
    """The receiver cannot take lines now (retried after a backoff); `reason` is a label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class LogOutbox:
    """One output's outbox, used from one worker thread (SQLite never on the event loop)."""

    def __init__(self, name: str, outbox: Outbox) -> None:
        self.name, self.outbox = name, outbox
        self.wake = asyncio.Event()
        self._worker = Worker(f"logs.{name}.outbox")
        self._opened = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._worker.call(fn, *args)

    async def open(self) -> None:
        if not self._opened:
            await self.run(self.outbox.open)
            self._opened = True

    async def put(self, chunks: Sequence[Chunk], marker: str) -> None:
        """Commit the chunks (durably, in one transaction) and wake the sender."""
        await self.open()
        await self.run(self.outbox.put, [(marker, _encode(c)) for c in chunks])
        self.wake.set()

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self.run(self.outbox.close)
        self._worker.close()


class Sender(Service):
    """Drains one outbox to one receiver; subclasses implement send() (and close())."""

    window = 8  # chunks per read

    def __init__(self, name: str, box: LogOutbox) -> None:
        super().__init__(f"out.{name}")
        self.output, self.box = name, box
        self.shipped = 0
        self.errors: Counter[str] = Counter()
        self.rejected = 0
        self.resent = 0  # lines a killed process may have delivered already
        self.undecodable = 0  # outbox rows that are not chunks (a salvaged, damaged file)
        self._resend = (0, -1)
        self.up = False
        self._backoff = Backoff(0.2, 30.0)

    async def start(self) -> None:
        await self.box.open()
        self._resend = await asyncio.to_thread(self._read_marker)

    def _read_marker(self) -> tuple[int, int]:
        """The rows a killed process was sending: delivered again now, so counted."""
        try:
            first, last = self._marker.read_text().split()
            return int(first), int(last)
        except (OSError, ValueError):
            return 0, -1

    @property
    def _marker(self) -> Path:
        return self.box.outbox.path.with_name(self.box.outbox.path.name + ".sending")

    async def run(self) -> None:
        while True:
            rows = await self.box.run(self.box.outbox.take, self.window)
            if not rows:
                self.box.wake.clear()
                await _wait(self.box.wake, 1.0)
                continue
            await self._deliver(rows)

    async def _deliver(self, rows: list[tuple[int, str, bytes]]) -> None:
        chunks = []
        for seq, _, payload in rows:
            try:
                chunks.append(_decode(payload))
            except (msgspec.DecodeError, msgspec.ValidationError):
                chunks.append(Chunk("", "", 0.0, [], []))  # acked below with the others
                self.undecodable += 1
                log.error("log outbox row unreadable; dropped", output=self.output, seq=seq)
        first, last = self._resend
        self.resent += sum(len(c.lines) for (seq, _, _), c in zip(rows, chunks, strict=True)
                           if first <= seq <= last)
        # Not fsynced: it must survive the process (kill -9), not the host.
        self._marker.write_text(f"{rows[0][0]} {rows[-1][0]}")
        try:
            await self.send(chunks)
        except OutputDown as exc:
            self.up = False
            self.errors[exc.reason] += 1
            await self.close()
            log.warning("log output is down; lines wait in its outbox", output=self.output,
                        reason=exc.reason, error=str(exc))
            await asyncio.sleep(self._backoff.next())
            return
        self.up = True
        self._backoff.reset()
        await self.box.run(self.box.outbox.ack, rows[0][0], rows[-1][0])
        self.shipped += sum(len(c.lines) for c in chunks)

    async def send(self, chunks: list[Chunk]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Drop the connection (after a failure, and on stop)."""

    async def stop(self) -> None:
        await self.close()
        await self.box.close()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
