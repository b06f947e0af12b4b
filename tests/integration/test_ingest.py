"""The real agent receives from the real SDK in another process, and survives garbage."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
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


def test_the_agent_counts_what_became_of_every_label(write_config, agent_factory,
                                                    tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock, 'label_ttl = "5s"\n')
    outcome = "inferwatch_label_join_labels_total"
    _send(sock, b"".join(b'{"model": "m", "request_id": "r%d", "prediction": 1}\n' % i
                         for i in range(10)))
    poll(lambda: value(agent.scrape(), "inferwatch_samples_received_total", model="m") == 10,
         what="predictions received")
    stored = time.monotonic()
    _send(sock, b"".join(b'{"model": "m", "request_id": "r%d", "label": 0}\n' % i
                         for i in (0, 1, 2, 0)))
    poll(lambda: value(agent.scrape(), outcome, outcome="duplicate") == 1,
         what="r0 labelled twice")
    metrics = agent.scrape()
    assert value(metrics, outcome, outcome="joined") == 3
    assert value(metrics, "inferwatch_labels_joined_total", model="m") == 3
    # The scenario is time itself: labels that come after label_ttl has passed.
    poll(lambda: time.monotonic() > stored + 5.5, what="label_ttl passed", timeout=8)
    _send(sock, b"".join(b'{"model": "m", "request_id": "r%d", "label": 1}\n' % i
                         for i in range(3, 10)))
    poll(lambda: value(agent.scrape(), outcome, outcome="expired") == 7,
         what="7 labels after their predictions' TTL")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_labels_received_total", model="m") == 11
    assert value(metrics, outcome, outcome="joined") == 3


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
    poll(lambda: value(agent.scrape(), "inferwatch_samples_rejected_total", model="_other",
                       reason="too_many_models") == 7, what="models beyond the bound refused")
    metrics = agent.scrape()
    assert [value(metrics, "inferwatch_samples_received_total", model=f"m{i}")
            for i in range(4)] == [1, 1, 1, None]


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


QUALITY_SDK = """
import sys, agent.client as iw
iw.configure(socket_path=sys.argv[1], model="fraud", model_version="3")
for i in range(400):
    iw.record(f"r-{i}", {"amount": i * 1.5, "country": "DE" if i % 3 else None},
              prediction=i % 2, score=0.9 if i % 2 else 0.1)
iw._client().flush(5.0)
for i in range(400):  # every fourth prediction is wrong
    iw.label(f"r-{i}", (i % 2) if i % 4 else 1 - (i % 2))
iw._client().flush(5.0)
"""


def test_windows_reach_the_quality_monitor_and_prometheus(write_config, agent_factory,
                                                          tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock,
                   'windows = ["200n"]\nlabel_wait = "6s"\n'
                   '[plugins.quality]\nenabled = true\ninterval = "100ms"\n'
                   '[plugins.quality.thresholds.accuracy]\nbelow = 0.8\nmin_samples = 100\n')
    subprocess.run([sys.executable, "-c", QUALITY_SDK, str(sock)], check=True, timeout=30,
                   env={"PYTHONPATH": str(ROOT)}, capture_output=True)
    w = {"model": "fraud", "model_version": "3", "window": "200n"}
    # Labels join within label_wait (6 s, generous for a loaded CI machine).
    poll(lambda: value(agent.scrape(), "inferwatch_model_window_final", **w) == 1, 30,
         what="a final 200-sample window")
    text = agent.scrape()
    assert value(text, "inferwatch_model_window_samples", **w) == 200
    assert value(text, "inferwatch_model_window_labeled_samples", **w) == 200
    assert value(text, "inferwatch_model_accuracy", **w) == 0.75
    assert value(text, "inferwatch_model_feature_issue_ratio", feature="country", issue="null",
                 **w) == pytest.approx(67 / 200, abs=0.01)
    assert value(text, "inferwatch_model_quality_degraded", metric="accuracy", **w) == 1
    assert value(text, "inferwatch_windows_published_total") >= 2


KEEP_CALLING = """
import sys, time, agent.client as iw
iw.configure(socket_path=sys.argv[1], model="m")
worst, calls, deadline = 0.0, 0, time.monotonic() + float(sys.argv[2])
features = {f"f{k}": k * 0.5 for k in range(20)}
while time.monotonic() < deadline:
    t = time.perf_counter()
    iw.record(f"r{calls}", features, prediction=1)
    worst = max(worst, time.perf_counter() - t)
    calls += 1
    if calls % 100 == 0:
        time.sleep(0.001)
print(worst, calls, iw.stats()["dropped_agent_unavailable"], flush=True)
"""


def test_the_caller_never_blocks_when_the_agent_is_killed(write_config, agent_factory,
                                                           tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    agent = _agent(write_config, agent_factory, sock)
    caller = subprocess.Popen([sys.executable, "-c", KEEP_CALLING, str(sock), "4"],
                              stdout=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(ROOT)})
    poll(lambda: value(agent.scrape(), "inferwatch_samples_received_total", model="m") > 1000,
         what="samples flowing")
    agent.proc.kill()
    out, _ = caller.communicate(timeout=30)
    worst, calls, dropped = out.split()
    assert float(worst) < 0.05, f"record() blocked for {float(worst) * 1000:.1f} ms"
    assert int(calls) > 10_000
    assert int(dropped) > 0  # counted, never waited for


def test_mqtt_ingestion_from_edge_devices(write_config, agent_factory, tmp_path: Path) -> None:
    from tests.integration.mqtt_helpers import Mosquitto  # noqa: PLC0415

    broker = Mosquitto(tmp_path / "broker").start()
    try:
        agent = _agent(write_config, agent_factory, tmp_path / "ingest.sock",
                       f'[plugins.ingest.mqtt]\nport = {broker.port}\n'
                       'topics = ["edge/+/predictions"]\n')
        poll(lambda: "subscribed for ingestion" in agent.log(), what="subscribed")
        batch = b"\n".join(b'{"model": "cam", "request_id": "e%d", "prediction": "cat"}' % i
                           for i in range(50))
        array = b'[{"model": "cam", "request_id": "e0", "label": "dog"}, {"model": 1}]'
        for topic, payload in (("edge/dev1/predictions", batch),
                               ("edge/dev2/predictions", array),
                               ("edge/dev3/predictions", b"\xff not json")):
            subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic,
                            "-m", payload], check=True, timeout=10)
        poll(lambda: value(agent.scrape(), "inferwatch_samples_rejected_total", model="",
                           reason="invalid_json") == 1, what="the garbage refused")
        text = agent.scrape()
        assert value(text, "inferwatch_samples_received_total", model="cam") == 50
        assert value(text, "inferwatch_labels_received_total", model="cam") == 1
        assert value(text, "inferwatch_samples_rejected_total", model="",
                     reason="invalid_field") == 1
        poll(lambda: value(agent.scrape(), "inferwatch_labels_joined_total", model="cam") == 1,
             what="the label joined")
    finally:
        broker.stop()
