"""Floods of client-chosen names against the real agent, over the socket and HTTP at once.

Each flood must leave the agent within the unit's MemoryMax (peak RSS), never hold the event
loop more than 100 ms (the agent's own lag gauge), fold or refuse the excess with a count,
and leave a legitimate model's windows coming.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.outbox import Outbox
from tests.diskfull import small_fs
from tests.helpers import ROOT, AgentProcess, free_port, poll, start_agent, value

pytestmark = pytest.mark.integration
__all__ = ["small_fs"]  # a fixture, used by name

MAX_LAG = 0.1  # seconds the loop may be held
LEGIT = "legit"
W = "200n"
# The models the floods use: registered before the model flood takes every other slot.
MODELS = (LEGIT, "versioned", "llm", "wide", "fair", "bulk")
MAX_MODELS = 100


def memory_max() -> int:
    """The shipped unit's MemoryMax, in bytes."""
    text = (ROOT / "systemd" / "inferwatch.service").read_text()
    number, unit = re.search(r"^MemoryMax=(\d+)([KMG]?)$", text, re.MULTILINE).groups()  # type: ignore[union-attr]
    return int(number) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


class Client:
    """Sends NDJSON in halves: one over the Unix socket, one over HTTP in 5,000-line posts."""

    def __init__(self, sock: Path, http: int) -> None:
        self.sock, self.url = sock, f"http://127.0.0.1:{http}/v1"

    def send(self, records: list[dict[str, object]], kind: str = "samples") -> None:
        lines = [json.dumps(r).encode() + b"\n" for r in records]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(self.sock))
            client.sendall(b"".join(lines[0::2]))
        for i in range(0, len(lines[1::2]), 5000):
            self.post(kind, b"".join(lines[1::2][i:i + 5000]))

    def post(self, kind: str, body: bytes) -> dict[str, object]:
        request = urllib.request.Request(f"{self.url}/{kind}", data=body,  # noqa: S310
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 202
            return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, Client]]:
    tmp = tmp_path_factory.mktemp("flood")
    port, http = free_port(), free_port()
    config = tmp / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp / "state"}"\nlog_format = "json"\n'
        f'[prometheus]\nlisten = "127.0.0.1:{port}"\n'
        f'[plugins.host]\nenabled = false\n'
        f'[plugins.ingest]\nenabled = true\ninterval = "100ms"\nsocket_path = "{tmp / "s"}"\n'
        f'http_listen = "127.0.0.1:{http}"\nwindows = ["{W}"]\nlabel_wait = "1s"\n'
        f'max_models = {MAX_MODELS}\n'
        f'[plugins.quality]\nenabled = true\ninterval = "100ms"\n')
    process = start_agent(config, port)
    client = Client(tmp / "s", http)
    client.send([{"model": m, "request_id": "first", "prediction": 1} for m in MODELS])
    poll(lambda: value(process.scrape(), "inferwatch_samples_received_total", model="fair"),
         what="the flood's models registered")
    yield process, client
    process.stop()


def _healthy(agent: AgentProcess, client: Client) -> None:
    """Within MemoryMax at the peak, the loop never held long, and legit's windows come."""
    before = value(agent.scrape(), "inferwatch_model_window_end_timestamp_seconds",
                   model=LEGIT, model_version="", window=W) or 0.0
    client.send([{"model": LEGIT, "request_id": f"l{i}", "prediction": i % 2,
                  "features": {"x": i}} for i in range(200)])
    poll(lambda: (value(agent.scrape(), "inferwatch_model_window_end_timestamp_seconds",
                        model=LEGIT, model_version="", window=W) or 0.0) > before, 20,
         what="a new window of the legitimate model")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_model_window_samples", model=LEGIT, model_version="",
                 window=W) == 200
    status = Path(f"/proc/{agent.proc.pid}/status").read_text()
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) << 10  # type: ignore[union-attr]
    assert peak < memory_max()
    # The agent's own blocking: less the time the loop thread waited for a CPU (this
    # machine may be busy), which the wall-clock lag gauge beside it includes.
    assert value(metrics, "inferwatch_event_loop_blocked_max_seconds") < MAX_LAG
    for plugin in ("ingest", "quality"):
        assert not value(metrics, "inferwatch_plugin_series_refused_total", plugin=plugin)
    assert agent.proc.poll() is None


def _poll_count(agent: AgentProcess, name: str, at_least: float, **labels: str) -> float:
    def reached() -> float | None:
        found = value(agent.scrape(), name, **labels) or 0.0
        return found if found >= at_least else None
    return poll(reached, 30, interval=0.1, what=f"{name}{labels} >= {at_least}")


def test_a_flood_of_model_names_is_refused_and_labels_stay_cheap(agent) -> None:
    process, client = agent
    client.send([{"model": f"m{i}", "request_id": "r", "prediction": 1} for i in range(50_000)])
    refused = 50_000 - (MAX_MODELS - len(MODELS))
    _poll_count(process, "inferwatch_samples_rejected_total", refused, model="_other",
                reason="too_many_models")
    # Labels for every model kept and many that are not: each is one lookup, not a scan.
    client.send([{"model": f"m{i}", "request_id": "r", "label": 1} for i in range(10_000)],
                "labels")
    _poll_count(process, "inferwatch_samples_rejected_total",
                refused + 10_000 - (MAX_MODELS - len(MODELS)),
                model="_other", reason="too_many_models")
    _healthy(process, client)


def test_a_flood_of_versions_folds_into_other(agent) -> None:
    process, client = agent
    client.send([{"model": "versioned", "model_version": f"v{i}", "request_id": f"r{i}",
                  "prediction": 1} for i in range(20_000)])
    _poll_count(process, "inferwatch_ingest_folded_total", 20_000 - 10, kind="model_version")
    _healthy(process, client)


def test_free_text_predictions_fold_into_other_classes(agent) -> None:
    process, client = agent
    client.send([{"model": "llm", "request_id": f"r{i}", "prediction": f"the answer is {i}"}
                 for i in range(100_000)])
    client.send([{"model": "llm", "request_id": f"r{i}", "label": "no"} for i in (1, 99_999)],
                "labels")
    _poll_count(process, "inferwatch_ingest_folded_total", 98_000, kind="class")
    _healthy(process, client)


def test_a_flood_of_feature_names_keeps_the_series_budget(agent) -> None:
    process, client = agent
    client.send([{"model": "wide", "request_id": f"r{i}", "prediction": 1,
                  "features": {f"f{i}_{k}": k for k in range(5)}} for i in range(20_000)])
    _poll_count(process, "inferwatch_ingest_folded_total", 90_000, kind="feature")
    _healthy(process, client)


def test_a_flood_of_group_values_folds_into_other(agent) -> None:
    process, client = agent
    client.send([{"model": "fair", "request_id": f"r{i}", "prediction": i % 2,
                  "group": f"person {i}"} for i in range(50_000)])
    _poll_count(process, "inferwatch_ingest_folded_total", 49_000, kind="group")
    _healthy(process, client)


def test_a_body_of_the_largest_size_is_taken_in_slices(agent) -> None:
    """150,000 records in one 12 MiB POST: decoded and counted a slice at a time."""
    process, client = agent
    body = b"".join(json.dumps({"model": "bulk", "request_id": f"r{i}", "prediction": i % 2,
                                "features": {"x": i}}).encode() + b"\n"
                    for i in range(150_000))
    assert client.post("samples", body)["accepted"] == 150_000
    _poll_count(process, "inferwatch_samples_received_total", 150_001, model="bulk")
    _healthy(process, client)


def test_a_full_disk_fills_the_join_not_the_outbox(tmp_path: Path, small_fs: Path) -> None:
    """On an 8 MiB state dir, predictions with big values flood the join: it stops at its
    reserve, the agent runs on, the outbox keeps every event, and every prediction is
    accounted for (waiting, or lost by a counted reason)."""
    state = small_fs / "state"
    outbox = Outbox(state / "outbox" / "mqtt.db", max_bytes=1 << 30, max_age=1e9)
    outbox.open()  # events from before, waiting for a broker that is down
    outbox.put([("inferwatch/v1/h/events/test", b'{"n": %d}' % i) for i in range(1000)])
    outbox.close()
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{state}"\nlog_format = "json"\n'
        f'[prometheus]\nlisten = "127.0.0.1:{port}"\n[plugins.host]\nenabled = false\n'
        f'[plugins.mqtt]\nenabled = true\nport = {free_port()}\ninterval = "100ms"\n'
        f'[plugins.ingest]\nenabled = true\ninterval = "100ms"\n'
        f'socket_path = "{tmp_path / "s"}"\njoin_reserve_bytes = {3 << 20}\n')
    agent = start_agent(config, port)
    try:
        sent = [{"model": "m", "request_id": f"r{i}", "prediction": "p" * 3000}
                for i in range(4000)]
        sent += [{"model": "m", "request_id": f"big{i}", "prediction": "p" * 100_000}
                 for i in range(5)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(tmp_path / "s"))
            client.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in sent))

        def accounted() -> dict[str, float] | None:
            metrics = agent.scrape()
            counts = {reason: value(metrics, "inferwatch_label_join_lost_total",
                                    reason=reason) or 0.0
                      for reason in ("dropped_predictions", "full_predictions",
                                     "too_large_predictions")}
            counts["waiting"] = value(metrics, "inferwatch_label_join_waiting",
                                      kind="predictions") or 0.0
            return counts if sum(counts.values()) == len(sent) else None
        counts = poll(accounted, 30, interval=0.2, what="every prediction accounted for")
        assert counts["too_large_predictions"] == 5
        assert counts["dropped_predictions"] + counts["full_predictions"] > 0
        metrics = agent.scrape()
        assert value(metrics, "inferwatch_outbox_depth", sink="mqtt") == 1001  # + started
        for reason in ("full", "expired", "too_large", "corrupt"):
            assert value(metrics, "inferwatch_outbox_dropped_total", sink="mqtt",
                         reason=reason) == 0
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0
    with sqlite3.connect(state / "sinks" / "mqtt-outbox.sqlite") as db:  # moved on start
        # `agent.stopping` may be lost at stop: issue 13 item 2, not this one's.
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] >= 1001
    assert "cannot rollback" not in agent.log()
