"""HTTP ingestion as an untrusted client sees it: every malformed request is a 4xx with a
reason and a count; a token off loopback; TLS; bounded concurrency."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.config import Secret, build_config
from agent.errors import ConfigError
from plugins.ingest.config import IngestConfig
from plugins.ingest.http import IngestHttp
from plugins.ingest.tally import Tally
from tests.helpers import free_port

TOKEN = "ingest-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = b'{"model": "m", "request_id": "a", "prediction": 1}'


async def _serve(**settings: Any) -> tuple[IngestHttp, str]:
    port = free_port()
    config = IngestConfig(enabled=True, http_listen=f"127.0.0.1:{port}",
                          token=Secret(TOKEN, "env:T"), **settings)
    service = IngestHttp(config, Tally(10))
    await service.start()
    scheme = "https" if config.tls_cert_file else "http"
    return service, f"{scheme}://127.0.0.1:{port}/v1/samples"


@pytest.fixture
async def http() -> AsyncIterator[tuple[IngestHttp, str]]:
    service, url = await _serve(max_body_bytes=4096)
    yield service, url
    await service.stop()


async def _post(url: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession(auto_decompress=False) as session, \
            session.post(url, data=body, headers={**AUTH, **headers}) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(("body", "headers", "status", "reason"), [
    (b"hello", {}, 400, "not_json"),  # was 202 with one line refused
    (b"hello\n\xff\xfe\n", {}, 400, "not_json"),
    (b"hello", {"Content-Encoding": "gzip"}, 400, "bad_body"),  # was 500
    (b"hello", {"Content-Encoding": "deflate"}, 400, "bad_body"),  # was 500
    (GOOD, {"Content-Encoding": "x-made-up"}, 415, "unsupported_encoding"),  # was read raw
    (b"[{broken", {}, 400, "not_json"),
    (GOOD, {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
])
async def test_every_malformed_request_is_a_4xx_with_a_reason(
        http: tuple[IngestHttp, str], body: bytes, headers: dict[str, str], status: int,
        reason: str) -> None:
    service, url = http
    code, answer = await _post(url, body, **headers)
    assert (code, answer["reason"]) == (status, reason)
    assert answer["error"]
    assert service.tally.refused_requests[reason] == 1


async def test_a_body_with_some_json_lines_is_202_with_line_errors(
        http: tuple[IngestHttp, str]) -> None:
    _, url = http
    assert await _post(url, b"hello\n" + GOOD) == (
        202, {"accepted": 1, "rejected": 1, "errors": [{"line": 1, "reason": "invalid_json"}]})
    assert await _post(url, gzip.compress(GOOD), **{"Content-Encoding": "gzip"}) == (
        202, {"accepted": 1, "rejected": 0, "errors": []})


async def test_an_encoding_aiohttp_knows_but_cannot_inflate_is_400(
        http: tuple[IngestHttp, str]) -> None:
    """aiohttp answers brotli or zstd itself, before any handler, when it lacks the codec."""
    _, url = http
    async with aiohttp.ClientSession(auto_decompress=False) as session, \
            session.post(url, data=GOOD, headers={**AUTH, "Content-Encoding": "br"}) as r:
        assert r.status == 400
        assert "content-encoding" in (await r.text()).lower()


async def test_too_large_is_413_and_counted(http: tuple[IngestHttp, str]) -> None:
    service, url = http
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=b" " * 5000, headers=AUTH) as response:
        assert response.status == 413
    assert service.tally.refused_requests["too_large"] == 1


async def test_concurrent_requests_beyond_the_cap_get_503() -> None:
    """Slow bodies hold their slot until body_timeout; one more request is refused at once."""
    service, url = await _serve(max_requests=2, body_timeout=5.0)
    host, port = url.split("//")[1].split("/")[0].split(":")
    writers = []
    try:
        for _ in range(2):  # two clients that send headers and then stall
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"POST /v1/samples HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                         "\r\nContent-Length: 100\r\n\r\n{".encode())
            await writer.drain()
            writers.append(writer)
        while service._in_flight < 2:
            await asyncio.sleep(0.01)
        code, answer = await _post(url, GOOD)
        assert (code, answer["reason"]) == (503, "too_busy")
    finally:
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await service.stop()
    assert service.tally.refused_requests["too_busy"] == 1


async def test_a_stalled_body_is_cut_off_with_408() -> None:
    service, url = await _serve(body_timeout=0.2)
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST /v1/samples HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                 "Content-Length: 100\r\n\r\n{".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    await service.stop()
    assert status_line.startswith(b"HTTP/1.1 408")
    assert service.tally.refused_requests["body_timeout"] == 1


async def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    service, url = await _serve(tls_cert_file=str(cert), tls_key_file=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s, \
                s.post(url, data=GOOD, headers=AUTH) as response:
            assert response.status == 202
        with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS listener
            await _post(url.replace("https", "http"), GOOD)
    finally:
        await service.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:9880", ":9880", "10.1.2.3:9880", "[::]:9880",
                                    "ingest.example:9880"])
def test_a_token_is_required_off_loopback(listen: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"plugins": {"ingest": {"enabled": True, "http_listen": listen}}},
                     {"ingest": IngestConfig})
    assert error.value.problems == [
        f"plugins.ingest.token: required when http_listen ({listen}) is not a loopback "
        'address: token = {file = "..."}']


@pytest.mark.parametrize("listen", ["127.0.0.1:9880", "127.0.0.2:9880", "[::1]:9880",
                                    "localhost:9880"])
def test_no_token_is_fine_on_loopback(listen: str) -> None:
    config = build_config({"plugins": {"ingest": {"enabled": True, "http_listen": listen}}},
                          {"ingest": IngestConfig})
    assert config.plugins["ingest"].http_listen == listen  # type: ignore[attr-defined]
