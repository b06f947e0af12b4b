"""Floods of client-chosen names against the real agent, over the socket and HTTP at once.

Each flood must leave the agent within the unit's MemoryMax (peak RSS), never hold the event
loop more than 100 ms (the agent's own lag gauge), fold or refuse the excess with a count,
and leave a legitimate model's windows coming.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, AgentProcess, free_port, poll, start_agent, value

pytestmark = pytest.mark.integration

MAX_LAG = 0.1  # seconds the loop may be held
LEGIT = "legit"
W = "200n"
# The models the floods use: registered before the model flood takes every other slot.
MODELS = (LEGIT, "versioned", "llm", "wide", "fair")
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
    assert value(metrics, "inferwatch_event_loop_lag_max_seconds") < MAX_LAG
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
    _poll_count(process, "inferwatch_samples_rejected_total", refused + 10_000 - 95,
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
