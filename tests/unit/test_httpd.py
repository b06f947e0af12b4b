"""The exporter's HTTP server as a client that does not follow the rules sees it: every
malformed or unsupported request is a 4xx and a closed connection; keep-alive works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent import httpd
from agent.httpd import HttpServer, Request, Response
from tests.helpers import free_port


async def _echo(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path}\n".encode(),
                    {"Content-Type": "text/plain"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server, port = HttpServer(_echo), free_port()
    await server.start("127.0.0.1", port)
    yield port
    await server.stop()


async def _exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes (or 5 s pass)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET metrics HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", b"405"),
    (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"413"),
    (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"413"),
    (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n", b"400"),
])
async def test_a_malformed_request_is_a_4xx_and_closed(port: int, raw: bytes,
                                                       status: bytes) -> None:
    answer = await _exchange(port, raw)
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in answer


async def test_a_head_beyond_the_limit_is_closed_unanswered(port: int) -> None:
    raw = b"GET / HTTP/1.1\r\nX: " + b"a" * (httpd.MAX_HEAD + 10) + b"\r\n\r\n"
    assert await _exchange(port, raw) == b""


async def test_keep_alive_serves_several_requests_on_one_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for path in ("/a", "/b?x=1"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"Connection: close" not in head
        body = await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r")[0]))
        assert body == f"GET {path.partition('?')[0]}\n".encode()
    writer.write(b"HEAD /c HTTP/1.1\r\nConnection: close\r\n\r\n")
    rest = await reader.read(-1)
    writer.close()
    await writer.wait_closed()
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"Connection: close\r\n\r\n")  # HEAD: the length, no body


async def test_http_1_0_closes_unless_asked_to_keep_alive(port: int) -> None:
    answer = await _exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"GET /\n")


async def test_stop_closes_idle_kept_alive_connections() -> None:
    server = HttpServer(_echo)
    other = free_port()
    await server.start("127.0.0.1", other)
    reader, writer = await asyncio.open_connection("127.0.0.1", other)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await reader.readuntil(b"GET /\n")
    await server.stop()  # the connection waits for its next request: it is closed
    async with asyncio.timeout(5):
        assert await reader.read(-1) == b""
    writer.close()
    await writer.wait_closed()


async def test_connections_beyond_the_cap_are_closed(port: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpd, "MAX_CONNECTIONS", 2)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for reader, writer in held:  # each one served, then kept open
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await reader.readuntil(b"GET /\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        assert await reader.read(-1) == b""  # closed before a byte was sent
    for _, held_writer in [*held, (reader, writer)]:
        held_writer.close()
        await held_writer.wait_closed()


async def test_a_head_sent_too_slowly_is_cut_off(port: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpd, "HEAD_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nX-Slow: ")  # and nothing more
    async with asyncio.timeout(5):
        assert await reader.read(-1) == b""
    writer.close()
    await writer.wait_closed()
