"""Records other plugins submit (`PluginContext.submit`), taken exactly as the socket takes
lines: the same size limit, decoder, counts, sampling, join and windows."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import msgspec

from agent.components import Service
from agent.context import PluginContext
from agent.intake import Record
from plugins.ingest.decode import Decoded, decode, decode_ndjson
from plugins.ingest.tally import Tally

BLANK = "blank"  # an empty line: skipped, as the socket skips it, and not counted
_encoder = msgspec.json.Encoder()


class SubmitReceiver(Service):
    """Attached to the core's intake while ingestion runs; detached on stop (and reload)."""

    def __init__(self, ctx: PluginContext, tally: Tally, max_record_bytes: int) -> None:
        super().__init__("intake")
        self.ctx, self.tally, self.limit = ctx, tally, max_record_bytes

    async def start(self) -> None:
        self.ctx.attach_receiver(self.receive)

    async def run(self) -> None:
        await asyncio.Event().wait()  # the work happens in receive(), called by the intake

    async def stop(self) -> None:
        self.ctx.detach_receiver(self.receive)

    def receive(self, records: Sequence[Record]) -> list[str]:
        """One verdict per record ('' accepted); called on the event loop."""
        verdicts = [""] * len(records)
        lines: list[bytes] = []
        where: list[int] = []
        for i, record in enumerate(records):
            line, why = self._line(record)
            if why:
                verdicts[i] = why
            else:
                lines.append(line)
                where.append(i)
        self.tally.bytes += sum(map(len, lines))
        if lines:
            for i, why in zip(where, self.tally.count_many(_decode(lines)), strict=True):
                verdicts[i] = why
        return verdicts

    def _line(self, record: Record) -> tuple[bytes, str]:
        """The record as one JSON line, or why it cannot be one (counted like the socket)."""
        line, why = as_line(record)
        if why:
            if why != BLANK:
                self.tally.rejected[("", why)] += 1
            return b"", why
        if len(line) > self.limit:
            self.tally.rejected[("", "too_large")] += 1
            return b"", "too_large"
        return line, ""


def as_line(record: object) -> tuple[bytes, str]:
    if isinstance(record, bytes | bytearray | memoryview):
        line = bytes(record).strip()
    elif isinstance(record, str):
        try:
            line = record.strip().encode()
        except UnicodeEncodeError:  # a lone surrogate
            return b"", "invalid_utf8"
    elif isinstance(record, Mapping):
        try:
            line = _encoder.encode(record)
        except (TypeError, ValueError, OverflowError):  # a value JSON cannot hold
            return b"", "invalid_field"
    else:
        return b"", "not_an_object"
    return (line, "") if line else (b"", BLANK)


def _decode(lines: list[bytes]) -> list[Decoded]:
    """One msgspec call for a clean batch of single lines (the socket's decoder); a record
    spread over lines (pretty-printed) is decoded on its own."""
    if any(b"\n" in line for line in lines):
        return [decode(line) for line in lines]
    return decode_ndjson(b"\n".join(lines))
