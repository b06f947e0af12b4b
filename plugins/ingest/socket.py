"""The local Unix socket: newline-delimited JSON from the client SDK (or anyone allowed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog

from agent.components import Service
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import decode_many
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
        """Split on newlines ourselves: an oversized line is skipped, never buffered whole."""
        limit, buffer, skipping = self.config.max_record_bytes, bytearray(), False
        while chunk := await reader.read(262_144):
            self.tally.bytes += len(chunk)
            lines, start = [], 0
            while (end := chunk.find(b"\n", start)) != -1:
                if skipping:
                    skipping = False
                    self.tally.rejected[("", "too_large")] += 1
                elif buffer:
                    buffer += chunk[start:end]
                    lines.append(bytes(buffer))
                    buffer.clear()
                else:
                    lines.append(chunk[start:end])
                start = end + 1
            self._accept(lines, limit)
            if not skipping:
                buffer += chunk[start:]
                skipping = len(buffer) > limit
                if skipping:
                    buffer.clear()
        self._accept([bytes(buffer)], limit)  # a last line without its newline: truncated?

    def _accept(self, lines: list[bytes], limit: int) -> None:
        usable = []
        for line in lines:
            if len(line) > limit:
                self.tally.rejected[("", "too_large")] += 1
            elif line.strip():
                usable.append(line)
        if usable:
            self.tally.count_many(decode_many(usable))
