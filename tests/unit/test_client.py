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
    assert [line["request_id"] for line in server.lines] == ["fine"]
