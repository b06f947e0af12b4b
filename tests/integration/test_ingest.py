"""The real agent receives from the real SDK in another process, and survives garbage."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import ROOT, poll, value

pytestmark = pytest.mark.integration

SDK = """
import sys, agent.client as iw
iw.configure(socket_path=sys.argv[1], model="fraud", model_version="3")
for i in range(1000):
    iw.record(f"r-{i}", {"amount": i * 1.5, "country": "DE"}, prediction=i % 2,
              scores={"0": 0.3, "1": 0.7})
for i in range(100):
    iw.label(f"r-{i}", i % 2)
iw._client().flush(5.0)
print(iw.stats())
"""


def _agent(write_config: ConfigWriter, agent_factory, sock: Path, extra: str = ""):
    config, port = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.ingest]\nenabled = true\n'
        f'interval = "100ms"\nsocket_path = "{sock}"\n{extra}')
    return agent_factory(config, port)


def test_sdk_in_another_process_reaches_the_agent(write_config, agent_factory,
                                                  tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock)
    assert oct(sock.stat().st_mode & 0o777) == "0o660"
    out = subprocess.run([sys.executable, "-c", SDK, str(sock)], capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(ROOT)}, timeout=30)
    assert "'sent': 1100" in out.stdout
    poll(lambda: value(agent.scrape(), "inferwatch_samples_received_total", model="fraud")
         == 1000, what="1000 samples counted")
    poll(lambda: value(agent.scrape(), "inferwatch_labels_received_total", model="fraud")
         == 100, what="100 labels counted")
    poll(lambda: value(agent.scrape(), "inferwatch_labels_joined_total", model="fraud") == 100,
         what="100 predictions joined with their labels")
    poll(lambda: value(agent.scrape(), "inferwatch_label_join_waiting", kind="predictions")
         == 900, what="the 900 unlabelled predictions waiting")
    assert value(agent.scrape(), "inferwatch_label_join_waiting", kind="labels") == 0


def test_a_restart_between_prediction_and_label_still_joins(write_config, agent_factory,
                                                             tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    first = _agent(write_config, agent_factory, sock)
    _send(sock, b"".join(b'{"model": "m", "request_id": "r%d", "prediction": 1}\n' % i
                         for i in range(10)))
    poll(lambda: value(first.scrape(), "inferwatch_label_join_waiting", kind="predictions")
         == 10, what="predictions stored")
    assert first.stop() == 0
    second = _agent(write_config, agent_factory, sock)
    _send(sock, b"".join(b'{"model": "m", "request_id": "r%d", "label": 0}\n' % i
                         for i in range(10)))
    poll(lambda: value(second.scrape(), "inferwatch_labels_joined_total", model="m") == 10,
         what="labels joined after the restart")


def _send(sock: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))
        client.sendall(data)


def test_garbage_is_rejected_by_reason_and_the_connection_survives(
        write_config, agent_factory, tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock, "max_record_bytes = 4096\n")
    lines = [
        b'{"model": "m", "request_id": "r", "prediction": 1',      # truncated
        b'{"model": "m\xff", "request_id": "r", "prediction": 1}',  # invalid UTF-8
        b'[1, 2]',
        b'{"model": "m", "request_id": "r"}',                       # no prediction
        b'{"model": "m", "request_id": "r", "prediction": 1, "features": {"s": "'
        + b"x" * 100_000 + b'"}}',                                  # over max_record_bytes
        b'{"model": "m", "request_id": "ok", "prediction": 1}',     # fine, afterwards
    ]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))
        client.sendall(b"\n".join(lines) + b"\n")
    poll(lambda: value(agent.scrape(), "inferwatch_samples_received_total", model="m") == 1,
         what="the good line after the garbage")
    metrics = agent.scrape()
    for reason in ("invalid_json", "invalid_utf8", "not_an_object", "no_prediction",
                   "too_large"):
        assert value(metrics, "inferwatch_samples_rejected_total", model="",
                     reason=reason) == 1, reason
    assert agent.proc.poll() is None


def test_model_labels_are_bounded(write_config, agent_factory, tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock, "max_models = 3\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))
        client.sendall(b"".join(b'{"model": "m%d", "request_id": "r", "prediction": 1}\n' % i
                                for i in range(10)))
    poll(lambda: value(agent.scrape(), "inferwatch_samples_received_total", model="_other")
         == 7, what="models beyond the bound counted together")


def test_http_endpoints_with_token_gzip_and_line_errors(write_config, agent_factory,
                                                       tmp_path: Path) -> None:
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from tests.helpers import free_port  # noqa: PLC0415

    (tmp_path / "token").write_text("s3cret-token\n")
    port = free_port()
    agent = _agent(write_config, agent_factory, tmp_path / "ingest.sock",
                   f'http_listen = "127.0.0.1:{port}"\nmax_body_bytes = 65536\n'
                   f'token = {{file = "{tmp_path / "token"}"}}\n')
    url = f"http://127.0.0.1:{port}/v1"

    def post(path: str, body: bytes, **headers: str) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(f"{url}/{path}", data=body, method="POST",  # noqa: S310
                                         headers={"Authorization": "Bearer s3cret-token",
                                                  **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:  # aiohttp's own 413 is plain text
                return exc.code, {"error": text.decode()}

    good = {"model": "m", "request_id": "a", "prediction": 1}
    status, body = post("samples", json.dumps([good, {"model": "m"}, good]).encode())
    assert (status, body) == (202, {"accepted": 2, "rejected": 1,
                                    "errors": [{"line": 2, "reason": "no_request_id"}]})
    ndjson = b'{"model": "m", "request_id": "a", "label": 1}\n' + json.dumps(good).encode()
    status, body = post("labels", gzip.compress(ndjson), **{"Content-Encoding": "gzip"})
    assert (status, body["accepted"], body["errors"]) == (
        202, 1, [{"line": 2, "reason": "wrong_endpoint"}])
    bomb = gzip.compress(b" " * (10 << 20))
    assert post("samples", bomb, **{"Content-Encoding": "gzip"})[0] == 413
    assert post("samples", b"x" * 70_000)[0] == 413
    assert post("samples", b"[{broken")[0] == 400
    request = urllib.request.Request(f"{url}/samples", data=b"[]", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert denied.value.code == 401
    denied.value.close()
    poll(lambda: value(agent.scrape(), "inferwatch_labels_received_total", model="m") == 1,
         what="counted")
    assert value(agent.scrape(), "inferwatch_samples_received_total", model="m") == 2
