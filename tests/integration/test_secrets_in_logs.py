"""No secret reaches a log line: every failure path a real agent can be driven into, with
debug logging, and every line it wrote (stdout and stderr) searched for every secret value.

Paths: wrong and over-long basic-auth passwords on a TLS exporter, plain HTTP to it, a wrong
ingest token, an MQTT broker refusing the password, a TLS handshake with a plain broker, and
configs with an error beside their secrets (`check` and `run`), in the real agent; a failing
webhook (500, and a connection cut) with the agent's logging.
"""

from __future__ import annotations

import asyncio
import base64
import io
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import bcrypt
import pytest
import structlog

from agent import logs
from agent.backoff import Backoff
from agent.config import build_config
from agent.delivery import DurableDelivery
from agent.metrics import PluginMetrics
from agent.model import Event
from plugins.webhook.config import WebhookConfig
from plugins.webhook.sink import WebhookSink
from tests.conftest import ConfigWriter
from tests.helpers import free_port, http_get, parse_metrics, poll, poll_async, run_cli, value
from tests.integration.mqtt_helpers import Mosquitto

pytestmark = pytest.mark.integration

SECRETS = {
    "prometheus": "prom-Pa55word-correct",
    "long": "L0ng-" + "x" * 95,  # 100 bytes: bcrypt 5 raised on it, and the trace kept it
    "wrong_prometheus": "prom-wrong-guess-77",
    "ingest": "ingest-T0ken-abcdef",
    "wrong_ingest": "ingest-wrong-T0ken",
    "mqtt": "mqtt-Pa55-wrong-for-broker",
    "ingest_mqtt": "ingest-mqtt-Pa55",
    "webhook": "webhook-Bearer-T0ken",
}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[str]]]:
    """A retrain trigger that always fails (500), recording what it was sent."""
    seen: list[str] = []

    class Failing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/retrain", seen
    server.shutdown()
    server.server_close()


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ingest", "mqtt", "ingest_mqtt", "webhook"):
        files[name] = tmp_path / f"{name}.secret"
        files[name].write_text(SECRETS[name] + "\n")
        files[name].chmod(0o600)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert))
    files["cert"], files["key"] = cert, key
    files["passwords"] = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(files["passwords"]), "agent",
                    "the-right-one"], check=True, capture_output=True)
    return files


def _config(files: dict[str, Path], broker: int, http: int, sock: Path) -> tuple[str, str]:
    hashed = bcrypt.hashpw(SECRETS["prometheus"].encode(), bcrypt.gensalt(4)).decode()
    return f"""
[plugins.host]
enabled = false
[plugins.mqtt]
enabled = true
port = {broker}
username = "agent"
password = {{file = "{files['mqtt']}"}}
[plugins.ingest]
enabled = true
interval = "100ms"
socket_path = "{sock}"
http_listen = "127.0.0.1:{http}"
token = {{file = "{files['ingest']}"}}
[plugins.ingest.mqtt]
port = {broker}
tls = true
tls_verify = false
username = "agent"
password = {{file = "{files['ingest_mqtt']}"}}
""", hashed


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"prom:{password}".encode()).decode()}


def _status(url: str, headers: dict[str, str], context: ssl.SSLContext | None = None,
            data: bytes | None = None) -> int:
    request = urllib.request.Request(url, headers=headers, data=data)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_no_secret_in_any_log_line(write_config: ConfigWriter, agent_factory,
                                   tmp_path: Path) -> None:
    files = _files(tmp_path)
    broker_port = free_port()
    broker = Mosquitto(tmp_path / "broker", broker_port,
                       f"listener {broker_port} 127.0.0.1\nallow_anonymous false\n"
                       f"password_file {files['passwords']}").start()
    http = free_port()
    body, hashed = _config(files, broker_port, http, tmp_path / "ingest.sock")
    config, port = write_config(
        body, prometheus=f'tls_cert_file = "{files["cert"]}"\ntls_key_file = "{files["key"]}"\n'
                         f'basic_auth_users = {{prom = "{hashed}"}}\n')
    config.write_text(config.read_text().replace('log_format = "json"',
                                                 'log_format = "json"\nlog_level = "debug"'))
    try:
        agent = agent_factory(config, port, wait=False)
        _drive(agent, port, http, files)
        poll(lambda: "mqtt" in agent.log() and "not authori" in agent.log().lower(), 10,
             what="the broker's refusal logged")
        agent.stop()
    finally:
        broker.stop()
    outputs = [agent.log(), *_bad_configs(tmp_path, files)]
    for text in outputs:
        for name, secret in SECRETS.items():
            assert secret not in text, f"secret {name!r} in a log line"


def _drive(agent: object, port: int, http: int, files: dict[str, Path]) -> None:
    context = ssl.create_default_context(cafile=str(files["cert"]))
    base = f"https://127.0.0.1:{port}"
    poll(lambda: _status(f"{base}/-/ready", _basic(SECRETS["prometheus"]), context) == 200,
         20, what="agent ready")
    assert _status(f"{base}/metrics", _basic(SECRETS["long"]), context) == 401  # was 500
    assert _status(f"{base}/metrics", _basic(SECRETS["wrong_prometheus"]), context) == 401
    with pytest.raises(OSError, match=r"Remote end closed|reset|EOF"):  # plain HTTP to TLS
        http_get(f"http://127.0.0.1:{port}/metrics", _basic(SECRETS["prometheus"]))
    ingest = f"http://127.0.0.1:{http}/v1/samples"
    wrong = {"Authorization": f"Bearer {SECRETS['wrong_ingest']}"}
    assert _status(ingest, wrong, data=b"[]") == 401
    right = {"Authorization": f"Bearer {SECRETS['ingest']}"}
    assert _status(ingest, right, data=b"hello") == 400
    poll(lambda: value(_scrape(base, context), "inferwatch_ingest_requests_refused_total",
                       reason="unauthorized"), 10, what="the wrong token counted")


def _scrape(base: str, context: ssl.SSLContext) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                       float]:
    request = urllib.request.Request(f"{base}/metrics",  # noqa: S310
                                     headers=_basic(SECRETS["prometheus"]))
    with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
        return parse_metrics(response.read().decode())


def _bad_configs(tmp_path: Path, files: dict[str, Path]) -> list[str]:
    """Configs with an error beside their secrets: `check` and `run` list the problems."""
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[agent]\nstate_dir = "{tmp_path / "s2"}"\n[plugins.mqtt]\nenabled = true\n'
                   f'username = "agent"\npassword = {{file = "{files["mqtt"]}"}}\nqos = 0\n'
                   f'[plugins.ingest]\nhttp_listen = "0.0.0.0:1"\nnosuch = 1\n'
                   f'token = {{file = "{files["ingest"]}"}}\n'
                   f'[plugins.drift.retrain]\nwebhook_url = "ftp://{SECRETS["webhook"]}"\n')
    outputs = []
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(bad))
        assert result.returncode == 78, result.stderr
        outputs.append(result.stdout + result.stderr)
    return outputs


async def test_a_failing_webhook_logs_no_token(webhook: tuple[str, list[str]],
                                              tmp_path: Path) -> None:
    """The webhook sink (where retrain requests go), failing two ways, under the agent's
    logging, retried through its outbox."""
    url, seen = webhook
    (tmp_path / "token").write_text(SECRETS["webhook"])
    cut = free_port()  # nothing listens: the connection is refused
    out = io.StringIO()
    logs.configure("debug", "json", out)
    try:
        for n, target in enumerate((url, f"http://127.0.0.1:{cut}/retrain")):
            config = build_config({"plugins": {"webhook": {
                "enabled": True, "url": target, "match": ["retrain.requested"],
                "bearer_token": {"file": str(tmp_path / "token")},
                "secret": {"file": str(tmp_path / "token")}}}},
                {"webhook": WebhookConfig}).plugins["webhook"]
            assert isinstance(config, WebhookConfig)
            sink = WebhookSink(config)
            delivery = DurableDelivery("webhook", sink, config, tmp_path / str(n),
                                       PluginMetrics("webhook", 100),
                                       backoff=Backoff(0.001, 0.002))
            await sink.start()
            await delivery.open()
            await delivery.put([Event(kind="retrain.requested", source="drift", host="h")])
            task = asyncio.create_task(delivery.run())
            await poll_async(lambda d=delivery: d.failed >= 2)
            task.cancel()
            await delivery.close()
            await sink.stop()
            assert delivery.outbox.depth == 1  # kept for a later try
    finally:
        structlog.reset_defaults()
    assert set(seen) == {f"Bearer {SECRETS['webhook']}"}  # it was sent, so it was held
    text = out.getvalue()
    assert text.count("sink delivery failed") == 2  # once per kind of trouble, not per retry
    assert SECRETS["webhook"] not in text
