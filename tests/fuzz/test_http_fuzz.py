"""Fuzzing HTTP ingestion end to end: any body, any encoding claim, is a 202 or a 4xx with a
reason; never a 5xx. The real aiohttp server, on its own loop in a thread."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import threading
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Secret
from plugins.ingest.config import IngestConfig
from plugins.ingest.http import IngestHttp
from plugins.ingest.tally import Tally
from tests.fuzz.test_decoders import lines, records
from tests.helpers import free_port

TOKEN = "fuzz-token-0001"
STATUSES = {202, 400, 413, 415}


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    loop = asyncio.new_event_loop()
    service = IngestHttp(IngestConfig(enabled=True, http_listen=f"127.0.0.1:{port}",
                                      token=Secret(TOKEN, "env:T"), max_body_bytes=8192,
                                      max_requests=64), Tally(100))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(10)
    yield port
    asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _encode(body: bytes, how: str) -> tuple[bytes, dict[str, str]]:
    if how == "gzip":
        return gzip.compress(body), {"Content-Encoding": "gzip"}
    if how == "deflate":
        return zlib.compress(body), {"Content-Encoding": "deflate"}
    if how == "none":
        return body, {}
    return body, {"Content-Encoding": how}  # a claim the body does not keep


bodies = (st.binary(max_size=2000) | lines.map(b"\n".join) |
          st.lists(records, max_size=6).map(lambda rs: json.dumps(rs).encode()) |
          st.just(b"x" * 9000))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies, st.sampled_from(["none", "gzip", "deflate", "identity", "x-unknown",
                                "gzip, deflate", "GZIP"]),
       st.sampled_from(["/v1/samples", "/v1/labels"]))
def test_any_request_is_202_or_a_4xx_with_a_reason(server: int, body: bytes, how: str,
                                                   path: str) -> None:
    data, headers = _encode(body, how)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        conn.request("POST", path, body=data,
                     headers={"Authorization": f"Bearer {TOKEN}", **headers})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    assert response.status in STATUSES, (response.status, answer[:200])
    if response.status in (202, 415) or answer.startswith(b"{"):
        parsed = json.loads(answer)
        assert ("accepted" in parsed) if response.status == 202 else parsed["reason"]
