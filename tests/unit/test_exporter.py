"""The /metrics endpoint: format negotiation, gzip, TLS and bcrypt basic auth."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Counter

from agent.config import PrometheusSection
from agent.errors import StartupError
from agent.exporter import MAX_PENDING_CHECKS, BasicAuth, Exporter
from agent.exposition import Exposition
from agent.metrics import SnapshotCollector
from tests.helpers import free_port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _registry() -> Exposition:
    registry = CollectorRegistry()
    Counter("inferwatch_test_requests", "Requests.", registry=registry).inc(3)
    return Exposition(registry, SnapshotCollector())


async def _start(**settings: object) -> tuple[Exporter, str]:
    port = free_port()
    exporter = Exporter(PrometheusSection(listen=f"127.0.0.1:{port}", **settings),  # type: ignore[arg-type]
                        _registry(), lambda: True)
    await exporter.start()
    return exporter, f"127.0.0.1:{port}"


async def test_text_and_openmetrics_negotiation() -> None:
    exporter, address = await _start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "inferwatch_test_requests_total 3.0" in await response.text()
        openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with session.get(f"http://{address}/metrics", headers=openmetrics) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")
        async with session.get(f"http://{address}/metrics",
                               headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert "inferwatch_test_requests_total" in await response.text()
    await exporter.stop()


async def test_tls_with_basic_auth(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    exporter, address = await _start(tls_cert_file=str(cert), tls_key_file=str(key),
                                     basic_auth_users={"prom": hashed})
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://{address}/metrics"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(url) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == 'Basic realm="inferwatch"'
        async with session.get(url, headers=_basic("prom", "wrong")) as response:
            assert response.status == 401
        for _ in range(2):  # the second request is served from the verification cache
            async with session.get(url, headers=_basic("prom", "correct horse")) as r:
                assert r.status == 200
                assert "inferwatch_test_requests_total 3.0" in await r.text()
    # Plain HTTP to a TLS listener gets no metrics.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://{address}/metrics") as response:
                await response.read()
    await exporter.stop()


@pytest.mark.parametrize("header", [None, "", "Bearer x", "Basic !!!", "Basic dXNlcg==",
                                    "Basic " + "QQ==" * 1000])
async def test_malformed_authorization_is_refused(header: str | None) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    assert not await BasicAuth({"user": hashed}).allowed(header)


async def test_port_in_use_and_bad_certificate(tmp_path: Path) -> None:
    first, address = await _start()
    clash = Exporter(PrometheusSection(listen=address), _registry(), lambda: True)
    with pytest.raises(StartupError, match=f"prometheus.listen: cannot listen on {address}"):
        await clash.start()
    await first.stop()
    (tmp_path / "bad.crt").write_text("not a certificate")
    bad = Exporter(PrometheusSection(listen=f"127.0.0.1:{free_port()}",
                                     tls_cert_file=str(tmp_path / "bad.crt"),
                                     tls_key_file=str(tmp_path / "bad.crt")),
                   _registry(), lambda: True)
    with pytest.raises(StartupError, match=r"prometheus\.tls_cert_file: cannot load"):
        await bad.start()


async def test_password_longer_than_bcrypt_reads_is_401_not_500() -> None:
    """bcrypt 5 raises on passwords over 72 bytes; the scrape answered 500 (and the log held
    the password in the traceback's locals)."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    exporter, address = await _start(basic_auth_users={"prom": hashed})
    async with aiohttp.ClientSession() as session:
        for password in ("p" * 73, "p" * 100, "é" * 37):  # 73, 100 and 74 bytes
            async with session.get(f"http://{address}/metrics",
                                   headers=_basic("prom", password)) as response:
                assert response.status == 401
    await exporter.stop()
    assert exporter._auth is not None
    assert exporter._auth.refused == 3


async def test_a_flood_of_wrong_passwords_is_bounded() -> None:
    """Failed checks run on the auth thread, a few at a time; the rest are refused unchecked,
    and a password already verified is still served from the cache meanwhile."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    auth = BasicAuth({"prom": hashed})
    assert await auth.allowed(_basic("prom", "right")["Authorization"])
    wrong = [auth.allowed(_basic("prom", f"wrong{i}")["Authorization"]) for i in range(40)]
    results = await asyncio.gather(*wrong, auth.allowed(_basic("prom", "right")["Authorization"]))
    auth.close()
    assert results[-1] is True
    assert not any(results[:-1])
    assert auth.throttled == 40 - MAX_PENDING_CHECKS
    assert auth.refused == MAX_PENDING_CHECKS  # checked and wrong


async def test_a_plugin_route_sits_behind_the_same_tls_and_auth(
        certificate: tuple[Path, Path]) -> None:
    """PluginContext.serve adds a path to this listener (the alerts API): same TLS, same
    basic auth, added and removed while the listener runs; core paths are not taken."""
    from agent.httpd import Response  # noqa: PLC0415

    cert, key = certificate
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    routes: dict[str, object] = {}
    port = free_port()
    exporter = Exporter(PrometheusSection(listen=f"127.0.0.1:{port}", tls_cert_file=str(cert),
                                          tls_key_file=str(key),
                                          basic_auth_users={"prom": hashed}),
                        _registry(), lambda: True, routes)  # type: ignore[arg-type]
    await exporter.start()
    url = f"https://127.0.0.1:{port}/api/v1/alerts"
    context = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(url, headers=_basic("prom", "pw")) as response:
            assert response.status == 404
        routes["/api/v1/alerts"] = lambda _r: Response(200, b'{"alerts":[]}')
        async with session.get(url) as response:
            assert response.status == 401
        async with session.get(url, headers=_basic("prom", "pw")) as response:
            assert (response.status, await response.text()) == (200, '{"alerts":[]}')
        routes["/metrics"] = lambda _r: Response(200, b"taken")
        async with session.get(f"https://127.0.0.1:{port}/metrics",
                               headers=_basic("prom", "pw")) as response:
            assert "inferwatch_test_requests_total" in await response.text()
    await exporter.stop()
