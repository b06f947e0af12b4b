"""The local Unix socket: newline-delimited JSON from the client SDK (or anyone allowed)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
from collections.abc import Mapping
from pathlib import Path

import structlog

from agent.client import socket_candidates
from agent.components import Service
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import decode_ndjson
from plugins.ingest.tally import Tally

log = structlog.get_logger("inferwatch")


def listen_path(env: Mapping[str, str] | None = None) -> Path:
    """The first of the SDK's candidates whose folder this process can create and write.

    Under the unit that is /run/inferwatch (RuntimeDirectory=); as a user, the session's
    runtime folder; else the default state folder: where `agent.client` looks, in that order.
    """
    candidates = [Path(c) for c in socket_candidates(os.environ if env is None else env)]
    for candidate in candidates:
        if _usable_folder(candidate.parent):
            return candidate
    return candidates[-1]


def _usable_folder(folder: Path) -> bool:
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True)
            folder.chmod(0o755)  # others may pass through; the socket's own mode decides
        except OSError:
            return False
    return os.access(folder, os.W_OK | os.X_OK)


class IngestService(Service):
    """Listens at `path`, or where the client SDK looks by default when `path` is None."""

    def __init__(self, path: Path | None, config: IngestConfig, tally: Tally) -> None:
        super().__init__("socket")
        self.path, self.config, self.tally = path, config, tally
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Transport] = set()

    async def start(self) -> None:
        self.path = listen_path() if self.path is None else self.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a killed agent
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), str(self.path))
        os.chmod(self.path, self.config.socket_mode)  # noqa: PTH101 - a socket, not a file we own by Path
        log.info("ingestion socket listening", path=str(self.path),
                 mode=f"{self.config.socket_mode:04o}", group=_group_name(self.path),
                 sdk_default=str(self.path) in socket_candidates())

    async def run(self) -> None:
        assert self._server is not None  # noqa: S101 - set by start()
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._clients):
            transport.abort()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _group_name(path: Path) -> str:
    """Who may connect besides the owner (the model server's user joins this group)."""
    try:
        gid = path.stat().st_gid
    except OSError:
        return ""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class _Connection(asyncio.Protocol):
    """A protocol, not a stream reader: each chunk is split and decoded as the socket hands it
    over (no second buffer, no pause/resume round trips); while it is, the client waits."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        self.lines = Lines(service.config.max_record_bytes, service.tally)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream socket
        self.transport = transport
        self.service._clients.add(transport)
        self.service.tally.connections += 1

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)

    def eof_received(self) -> bool:
        self.lines.close()
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.service._clients.discard(self.transport)
            self.service.tally.connections -= 1
            self.transport = None


class Lines:
    """Splits a byte stream into lines and decodes whole ones a chunk at a time.

    A line longer than `limit` is counted and skipped, never buffered whole.
    """

    def __init__(self, limit: int, tally: Tally) -> None:
        self.limit, self.tally = limit, tally
        self.rest, self.skipping = b"", False

    def feed(self, chunk: bytes) -> None:
        self.tally.bytes += len(chunk)
        if self.skipping:  # the rest of a line already too long
            end = chunk.find(b"\n")
            if end == -1:
                return
            self.skipping, chunk = False, chunk[end + 1:]
            self.tally.rejected[("", "too_large")] += 1
        last = chunk.rfind(b"\n")
        if last == -1:
            self.rest += chunk
        else:
            first = 0
            if self.rest:  # the line the last chunk ended in: on its own, not copied in front
                first = chunk.find(b"\n") + 1
                self._accept(self.rest + chunk[:first - 1])
            if first < last:
                self._accept(chunk, first, last)
            self.rest = chunk[last + 1:]
        if len(self.rest) > self.limit:
            self.rest, self.skipping = b"", True

    def close(self) -> None:
        """End of input: a last line without its newline (truncated?) is judged as it is."""
        if self.skipping:
            self.tally.rejected[("", "too_large")] += 1
        elif self.rest.strip():
            self._accept(self.rest)
        self.rest, self.skipping = b"", False

    def _accept(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        """The lines of data[start:end]."""
        limit = self.limit
        if not _lines_within(data, limit, start, end):
            lines = data[start:end].split(b"\n")
            self.tally.rejected[("", "too_large")] += sum(len(line) > limit for line in lines)
            data, start, end = b"\n".join(line for line in lines if len(line) <= limit), 0, None
        decoded = decode_ndjson(data, start, end)
        if decoded:
            self.tally.count_many(decoded)


def _lines_within(data: bytes, limit: int, start: int = 0, end: int | None = None) -> bool:
    """Whether no line of data[start:end] is longer than `limit`, in len/limit steps."""
    pos, end = start, len(data) if end is None else end
    while end - pos > limit:
        newline = data.rfind(b"\n", pos, pos + limit + 1)
        if newline == -1:
            return False
        pos = newline + 1
    return True
