"""The `syslog` output: RFC 5424 messages over TCP with octet-counting framing (RFC 6587),
optionally TLS (RFC 5425).

TCP syslog has no acknowledgement: lines leave the outbox once the kernel took them
(`drain()`). A receiver that hung up (its FIN seen before the next write) gets a new
connection first, so a restarted rsyslog loses nothing; one whose host dies with lines
unread in its buffers loses them (docs/logs.md, "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from agent.broker import TlsSettings, tls_context
from plugins.logs.outputs.base import Chunk, LogOutbox, OutputDown, Sender, rfc3339

SEVERITY = {"emerg": 0, "emergency": 0, "panic": 0, "alert": 1, "crit": 2, "critical": 2,
            "fatal": 2, "error": 3, "err": 3, "warn": 4, "warning": 4, "notice": 5,
            "info": 6, "information": 6, "debug": 7, "trace": 7, "verbose": 7}


def header(facility: int, level: str, ts: float, *, host: str, app: str, msgid: str) -> bytes:
    pri = facility * 8 + SEVERITY.get(level, 6)
    return f"<{pri}>1 {rfc3339(ts)} {host} {app} - {msgid} - ".encode()


def frame(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or '-' (RFC 5424, 6)."""
    clean = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return clean or "-"


class SyslogSender(Sender):
    def __init__(self, name: str, box: LogOutbox, *, host: str, port: int,
                 tls: TlsSettings | None, facility: int, app_name: str, hostname: str,
                 timeout: float) -> None:
        super().__init__(name, box)
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.facility, self.app = facility, _field(app_name, 48)
        self.hostname = _field(hostname, 255)
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def send(self, chunks: list[Chunk]) -> None:
        writer = await self._connect()
        parts = []
        for chunk in chunks:
            msgid = _field(chunk.input, 32)
            plain = header(self.facility, "", chunk.ts, host=self.hostname, app=self.app,
                           msgid=msgid)
            for line, level in zip(chunk.lines, chunk.levels, strict=True):
                head = plain if not level else header(
                    self.facility, level, chunk.ts, host=self.hostname, app=self.app, msgid=msgid)
                parts.append(frame(head + line))
        try:
            writer.write(b"".join(parts))
            await asyncio.wait_for(writer.drain(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise OutputDown("send_error", str(exc)) from None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing() and not (
                self._reader is not None and self._reader.at_eof()):
            return self._writer
        await self.close()  # the receiver hung up: what we would write now would be lost
        context = tls_context(self.tls) if self.tls is not None else None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.host, self.port, ssl=context,
                server_hostname=self.host if context else None), self.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise OutputDown("connect_error", str(exc)) from None
        self._reader, self._writer = reader, writer
        return writer

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
