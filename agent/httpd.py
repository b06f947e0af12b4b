"""A small HTTP/1.1 server on asyncio streams, for the agent's own GET endpoints.

aiohttp's server cost ~9 MiB of RSS in imports, a fifth of a host-only agent, for what
`/metrics` needs: GET and HEAD, keep-alive, TLS. Requests are bounded (head size, time to send
it, idle time, connections at once); a request with a body, a malformed head or another
method is answered 4xx and the connection closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from agent.errors import StartupError

MAX_HEAD = 16 * 1024  # request line and headers
IDLE_TIMEOUT = 75.0  # for the next request on a kept-alive connection (Prometheus reuses it)
HEAD_TIMEOUT = 10.0  # from a request's first byte to the end of its head
MAX_CONNECTIONS = 128  # more are closed at once


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps the last value

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class BadRequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler, self._ssl = handler, ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str | None, port: int) -> None:
        """Raise OSError when the address cannot be bound."""
        self._server = await asyncio.start_server(
            self._connection, host, port, ssl=self._ssl, reuse_address=True, limit=MAX_HEAD,
            ssl_handshake_timeout=HEAD_TIMEOUT if self._ssl else None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=5.0)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - called by asyncio in a task
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, stalled, or sent a head too long: just close
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        """One request and its response; whether the connection stays open."""
        async with asyncio.timeout(IDLE_TIMEOUT):
            first = await reader.readexactly(1)
        async with asyncio.timeout(HEAD_TIMEOUT):
            head = first + await reader.readuntil(b"\r\n\r\n")
        try:
            request = parse_head(head)
        except BadRequestError as exc:
            writer.write(encode(Response(exc.status, f"{exc}\n".encode()), keep=False))
            await writer.drain()
            return False
        response = await self._handler(request)
        keep = keep_alive(request)
        writer.write(encode(response, keep=keep, head_only=request.method == "HEAD"))
        await writer.drain()
        return keep


def parse_head(head: bytes) -> Request:
    """The request line and headers (without the body, which no endpoint takes)."""
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        raise BadRequestError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequestError(505, "HTTP/1.0 or HTTP/1.1 only")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[:1] in " \t":
            raise BadRequestError(400, "malformed header")
        headers[name.lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        raise BadRequestError(405, "GET or HEAD only")
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise BadRequestError(413, "no endpoint takes a request body")
    return Request(method, target.partition("?")[0], version, headers)


def keep_alive(request: Request) -> bool:
    connection = request.header("connection").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


def encode(response: Response, *, keep: bool, head_only: bool = False) -> bytes:
    status = HTTPStatus(response.status)
    headers = {"Content-Length": str(len(response.body)), **response.headers}
    if not keep:
        headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def server_tls(cert_file: str | None, key_file: str | None, where: str) -> ssl.SSLContext | None:
    """The TLS context of a listener (TLS 1.2+), or None without a certificate; a file that
    does not load is a StartupError naming the config key `where`."""
    if not cert_file or not key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"{where}: cannot load certificate/key: {exc}") from None
    return context
