"""The local Unix socket: newline-delimited JSON from the client SDK (or anyone allowed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog

from agent.components import Service
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import decode_ndjson
from plugins.ingest.tally import Tally

log = structlog.get_logger("inferwatch")


class IngestService(Service):
    def __init__(self, path: Path, config: IngestConfig, tally: Tally) -> None:
        super().__init__("socket")
        self.path, self.config, self.tally = path, config, tally
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a killed agent
        self._server = await asyncio.start_unix_server(self._handle, str(self.path))
        os.chmod(self.path, self.config.socket_mode)  # noqa: PTH101 - a socket, not a file we own by Path
        log.info("ingestion socket listening", path=str(self.path))

    async def run(self) -> None:
        assert self._server is not None  # noqa: S101 - set by start()
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        # Python 3.11 logs a traceback for a connection handler still running when the loop
        # ends; closing the connections lets each handler finish on its own (end of input).
        for writer in list(self._clients.values()):
            writer.transport.abort()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a handler runs in its own task
        self._clients[task] = writer
        self.tally.connections += 1
        try:
            await self._lines(reader)
        except (ConnectionError, OSError):
            pass
        finally:
            self.tally.connections -= 1
            self._clients.pop(task, None)
            writer.close()

    async def _lines(self, reader: asyncio.StreamReader) -> None:
        """Whole lines go on a chunk at a time; an oversized line is skipped, never buffered."""
        limit, rest, skipping = self.config.max_record_bytes, b"", False
        while chunk := await reader.read(262_144):
            self.tally.bytes += len(chunk)
            if skipping:  # the rest of a line already too long
                end = chunk.find(b"\n")
                if end == -1:
                    continue
                skipping, chunk = False, chunk[end + 1:]
                self.tally.rejected[("", "too_large")] += 1
            last = chunk.rfind(b"\n")
            if last == -1:
                rest += chunk
            else:
                self._accept(rest + chunk[:last] if rest else chunk[:last], limit)
                rest = chunk[last + 1:]
            if len(rest) > limit:
                rest, skipping = b"", True
        if rest.strip():
            self._accept(rest, limit)  # a last line without its newline: truncated?

    def _accept(self, data: bytes, limit: int) -> None:
        if not _lines_within(data, limit):
            lines = data.split(b"\n")
            self.tally.rejected[("", "too_large")] += sum(len(line) > limit for line in lines)
            data = b"\n".join(line for line in lines if len(line) <= limit)
        decoded = decode_ndjson(data) if data.strip() else []
        if decoded:
            self.tally.count_many(decoded)


def _lines_within(data: bytes, limit: int) -> bool:
    """Whether no line of `data` is longer than `limit`, in len/limit steps, not per line."""
    pos, end = 0, len(data)
    while end - pos > limit:
        newline = data.rfind(b"\n", pos, pos + limit + 1)
        if newline == -1:
            return False
        pos = newline + 1
    return True
