"""Each output against a real receiver (rsyslog, mosquitto) or Loki's stand-in, through the
real agent: the receiver gets the redacted lines, byte for byte, in order, also after an
outage of the receiver."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.helpers import http_get, poll
from tests.integration.mqtt_helpers import Mosquitto
from tests.logs.harness import Shipper, numbered, redacted
from tests.logs.receivers import LokiStandIn, Rsyslog

pytestmark = pytest.mark.integration


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path / "rsyslog").start()
    yield server
    server.stop()


def _syslog_output(port: int, extra: str = "") -> str:
    return f"""[[plugins.logs.outputs]]
type = "syslog"
port = {port}
{extra}"""


def test_syslog_rfc5424_octet_counting_to_rsyslog(tmp_path: Path, rsyslog: Rsyslog) -> None:
    ship = Shipper(tmp_path / "agent", outputs=_syslog_output(rsyslog.port))
    log = ship.root / "in" / "app.log"
    lines = numbered(0, 2000) + b"x" * 100_000 + b" a@b.io\n" + "grüße ✓\n".encode()
    log.write_bytes(lines)
    try:
        ship.start()
        expected = redacted(lines)
        poll(lambda: len(rsyslog.received()) >= len(expected), 30, what="rsyslog has all")
        assert rsyslog.received() == expected
        rsyslog.stop()  # the receiver goes away; lines wait in the outbox
        more = numbered(2000, 500)
        with log.open("ab") as f:
            f.write(more)
        poll(lambda: ship.metric("inferwatch_logs_lines_queued_total", input="app") >= 2502,
             what="lines committed while rsyslog is down")
        rsyslog.start()
        whole = expected + redacted(more)
        poll(lambda: rsyslog.received().endswith(redacted(more)), 30, what="the rest")
        got = rsyslog.received()
        assert got.startswith(expected)
        assert set(got.splitlines()) == set(whole.splitlines())  # lost: none
    finally:
        ship.stop()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca",
             "-keyout", str(ca_key), "-out", str(ca))
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(folder / "san.ext"),
             "-out", str(cert))
    return {"ca": ca, "cert": cert, "key": key}


def test_syslog_over_tls(tmp_path: Path, pki: dict[str, Path]) -> None:
    server = Rsyslog(tmp_path / "rsyslog", tls=pki).start()
    ship = Shipper(tmp_path / "agent", outputs=_syslog_output(
        server.port, f'tls = true\nca_file = "{pki["ca"]}"'))
    lines = numbered(0, 300)
    (ship.root / "in" / "app.log").write_bytes(lines)
    try:
        ship.start()
        poll(lambda: server.received() == redacted(lines), 30, what="rsyslog has all (TLS)")
    finally:
        ship.stop()
        server.stop()


def test_mqtt_output(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker").start()
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="logs-test")
    sub.on_message = lambda _c, _u, message: got.append(message.payload)
    sub.on_connect = lambda c, *_: c.subscribe("logs/#", qos=1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    ship = Shipper(tmp_path / "agent", outputs=f"""[[plugins.logs.outputs]]
type = "mqtt"
port = {broker.port}
topic = "logs/{{host}}/app"
""")
    lines = numbered(0, 1000)
    (ship.root / "in" / "app.log").write_bytes(lines)
    try:
        poll(sub.is_connected, what="subscriber connected")
        ship.start()
        poll(lambda: len(got) >= 1000, 30, what="1000 messages")
        assert got == redacted(lines).splitlines()
    finally:
        ship.stop()
        sub.loop_stop()
        sub.disconnect()
        broker.stop()


def test_loki_push_with_gzip_and_an_outage(tmp_path: Path) -> None:
    loki = LokiStandIn().start()
    ship = Shipper(tmp_path / "agent", outputs=f"""[[plugins.logs.outputs]]
type = "loki"
url = "http://127.0.0.1:{loki.port}"
labels = {{job = "inference"}}
""")
    log = ship.root / "in" / "app.log"
    log.write_bytes(numbered(0, 500))
    try:
        loki.fail = 503  # down first: the lines wait, then arrive
        ship.start()
        poll(lambda: ship.metric("inferwatch_logs_output_errors_total", output="loki",
                                 reason="http_503") >= 1, what="a refused push")
        loki.fail = 0
        query = urllib.parse.quote('{job="inference", input="app"}')
        url = f"http://127.0.0.1:{loki.port}/loki/api/v1/query_range?query={query}"

        def values() -> list[list[str]]:
            result = json.loads(http_get(url))["data"]["result"]
            return [v for stream in result for v in stream["values"]]
        poll(lambda: len(values()) >= 500, 30, what="500 entries in loki")
        entries = values()
        assert [v[1].encode() for v in entries] == redacted(numbered(0, 500)).splitlines()
        assert loki.encodings == {"gzip"}
        stamps = [int(v[0]) for v in entries]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps)
    finally:
        ship.stop()
        loki.stop()
