"""A reload's new certificate or users on the same address apply in place, or not at all."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.config import PrometheusSection
from agent.errors import StartupError
from agent.exporter import Exporter
from agent.exposition import Exposition
from agent.metrics import SnapshotCollector
from tests.helpers import free_port


def _certificate(folder: Path, name: str) -> tuple[str, str]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return str(cert), str(key)


def _served(port: int) -> bytes:
    """The certificate a fresh TLS handshake gets (DER)."""
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=5))


def _der(cert: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(Path(cert).read_text())


async def test_a_new_certificate_is_served_on_the_same_socket(tmp_path: Path) -> None:
    old, new = _certificate(tmp_path, "old"), _certificate(tmp_path, "new")
    port = free_port()
    settings = PrometheusSection(listen=f"127.0.0.1:{port}", tls_cert_file=old[0],
                                 tls_key_file=old[1])
    exporter = Exporter(settings, Exposition(CollectorRegistry(), SnapshotCollector()),
                        lambda: True)
    await exporter.start()
    assert await asyncio.to_thread(_served, port) == _der(old[0])
    rotated = PrometheusSection(listen=settings.listen, tls_cert_file=new[0],
                                tls_key_file=new[1])
    assert exporter.updatable(rotated)
    exporter.update(rotated)
    assert await asyncio.to_thread(_served, port) == _der(new[0])

    broken = PrometheusSection(listen=settings.listen, tls_cert_file=new[0],
                               tls_key_file=old[1])  # a key that does not match
    with pytest.raises(StartupError, match="cannot load certificate"):
        exporter.update(broken)
    assert exporter.settings == rotated, "a failed update changes nothing"
    assert await asyncio.to_thread(_served, port) == _der(new[0])
    assert not exporter.updatable(PrometheusSection(listen=settings.listen))  # TLS off: rebind
    await exporter.stop()
