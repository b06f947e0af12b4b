"""The model-server SDK: stdlib only, never blocks, encodes what JSON can carry, samples alike."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.client import Client
from tests.helpers import ROOT, poll

THIRD_PARTY = ("msgspec", "prometheus_client", "aiohttp", "structlog", "pluggy", "psutil",
               "numpy", "pynvml", "aiomqtt", "bcrypt", "paho")


def test_import_pulls_in_no_third_party_module() -> None:
    code = ("import sys, agent.client; "
            f"print([m for m in sys.modules if m.split('.')[0] in {THIRD_PARTY!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "[]"


class LineServer:
    """A Unix stream socket that collects JSON lines, as the agent's ingest socket does."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            for line in stream:
                self.lines.append(json.loads(line))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LineServer]:
    srv = LineServer(tmp_path / "ingest.sock")
    yield srv
    srv.sock.close()


def test_records_and_labels_arrive_encoded(server: LineServer) -> None:
    client = Client(socket_path=str(server.path), model="fraud", model_version="3")
    assert client.record("r-1", {"amount": 12.5, "country": "DE", "bad": float("nan"),
                                 "inf": float("inf"), "obj": object}, 1,
                         scores={"0": 0.2, "1": 0.8}, group="g1")
    assert client.label("r-1", 0)
    poll(lambda: len(server.lines) == 2, what="two lines")
    sample, label = server.lines
    assert sample["model"] == "fraud"
    assert sample["model_version"] == "3"
    assert sample["request_id"] == "r-1"
    assert sample["features"]["amount"] == 12.5
    assert sample["features"]["bad"] is None, "JSON has no NaN: it travels as null"
    assert sample["features"]["inf"] is None
    assert sample["features"]["obj"] == "<class 'object'>"
    assert sample["scores"] == {"0": 0.2, "1": 0.8}
    assert sample["group"] == "g1"
    assert label == {"model": "fraud", "request_id": "r-1", "label": 0, "ts": label["ts"]}
    assert client.stats()["sent"] == 2


def test_sampling_keeps_predictions_and_labels_together(server: LineServer) -> None:
    client = Client(socket_path=str(server.path), model="m", sample_rate=0.3)
    kept = {i for i in range(2000) if client.record(f"r-{i}", {}, 0)}
    labelled = {i for i in range(2000) if client.label(f"r-{i}", 1)}
    assert kept == labelled
    assert 0.25 < len(kept) / 2000 < 0.35
    assert client.stats()["sampled_out"] == 2 * (2000 - len(kept))


def test_agent_down_never_blocks_and_counts_drops(tmp_path: Path) -> None:
    client = Client(socket_path=str(tmp_path / "absent.sock"), queue_size=1000)
    worst = 0.0
    for i in range(20_000):
        began = time.perf_counter()
        client.record(f"r-{i}", {"x": i}, 0)
        worst = max(worst, time.perf_counter() - began)
    assert worst < 0.05, f"a record() call took {worst * 1000:.1f} ms"
    poll(lambda: (s := client.stats())["dropped_queue_full"] + s["dropped_agent_unavailable"]
         == 20_000, what="every record dropped and counted")
    assert client.stats()["sent"] == 0


def test_errors_never_reach_the_caller(server: LineServer) -> None:
    client = Client(socket_path=str(server.path))

    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert client.record(Weird(), {}, 0) is False  # type: ignore[arg-type]
    assert client.record("ok", {"w": Weird()}, 0) is True  # encoding fails later, quietly
    assert client.record("fine", {"x": 1}, 0) is True
    poll(lambda: client.stats()["sent"] == 1, what="the sender thread survived")
    assert client.stats()["dropped_unencodable"] == 1
    # "sent" counts what reached the socket; the server thread may not have read it yet.
    poll(lambda: server.lines, what="the server read the line")
    assert [line["request_id"] for line in server.lines] == ["fine"]


def test_one_socket_rule_for_the_sdk_and_the_agent(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.client import find_socket, socket_candidates  # noqa: PLC0415
    from plugins.ingest.socket import listen_path  # noqa: PLC0415

    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert socket_candidates(env) == ["/run/inferwatch/ingest.sock",
                                      f"{tmp_path}/xdg/inferwatch/ingest.sock",
                                      f"{tmp_path}/home/.local/state/inferwatch/ingest.sock"]
    assert socket_candidates({**env, "INFERWATCH_SOCKET": "/x.sock"}) == ["/x.sock"]
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr("agent.client.RUN_DIR", str(tmp_path / "not-a-folder" / "inferwatch"))
    (tmp_path / "xdg").mkdir()
    chosen = listen_path(env)  # /run/inferwatch cannot be made: the session's folder next
    assert chosen == tmp_path / "xdg" / "inferwatch" / "ingest.sock"
    assert (chosen.parent.stat().st_mode & 0o777) == 0o755
    srv = LineServer(chosen)
    try:
        assert find_socket(socket_candidates(env)) == str(chosen), "the SDK looks there too"
    finally:
        srv.sock.close()


def test_unreachable_agent_is_logged_once_and_stats_say_where(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "absent.sock")
    client = Client(socket_path=missing, flush_interval=0.01)
    with caplog.at_level("WARNING", logger="inferwatch.client"):
        for i in range(3):
            client.record(f"r-{i}", {}, 0)
            client.flush()
            client._retry_at = 0.0  # retry at once: every attempt fails the same way
    messages = [r.getMessage() for r in caplog.records if r.name == "inferwatch.client"]
    assert len(messages) == 1, messages
    assert missing in messages[0]
    assert "No such file or directory" in messages[0]
    stats = poll(lambda: (s := client.stats())["dropped_agent_unavailable"] == 3 and s,
                 what="three drops counted")
    assert stats["socket_path"] == missing
    assert stats["looked_at"] == [missing]
