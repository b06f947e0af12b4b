"""A live agent with every plugin on and traffic flowing, for tests that look at it from outside.

Host and fake-GPU telemetry (one GPU throttling, an XID), MQTT events to a real mosquitto,
and a binary model fed through the client SDK: two groups, a cost matrix, labels right
behind the predictions, a few rejected records, and drift injected after a while.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import agent.client as sdk
from plugins.nvidia.fake import scenario
from tests.helpers import AgentProcess, free_port, http_get, poll, start_agent
from tests.integration.mqtt_helpers import Mosquitto

CONFIG = """\
[agent]
state_dir = "{state}"
log_format = "json"
[prometheus]
listen = "127.0.0.1:{port}"
[plugins.host]
interval = "1s"
[[plugins.host.processes]]
name = "agent"
cmdline = "agent run"
[plugins.nvidia]
enabled = true
backend = "fake"
fake_scenario = "{scenario}"
[plugins.mqtt]
enabled = true
host = "127.0.0.1"
port = {mqtt_port}
[plugins.ingest]
enabled = true
socket_path = "{socket}"
windows = ["2s"]
label_wait = "1s"
[plugins.ingest.models.fraud]
positive_class = "1"
[plugins.quality]
enabled = true
interval = "1s"
reference_samples = 200
min_group_size = 10
[plugins.quality.models.fraud.cost]
fp = 1.0
fn = 5.0
[plugins.quality.thresholds.accuracy]
below = 0.99
clear = 0.995
min_samples = 50
[plugins.drift]
enabled = true
interval = "1s"
reference_samples = 300
fleet_profiles = true
"""

MODEL, VERSION = "fraud", "3"
# GPU 1 is held back by its power cap; XID 79 (fallen off the bus) reported on GPU 0.
POWER_CAP = 0x4


class Traffic:
    """Predictions and labels at a steady rate; `drift` shifts one feature's mean."""

    def __init__(self, socket_path: Path, rate: float = 400.0) -> None:
        self.client = sdk.Client(socket_path=str(socket_path), model=MODEL,
                                 model_version=VERSION)
        self.rate, self.drift = rate, False
        self.rng = random.Random(11)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _row(self, i: int) -> None:
        amount = self.rng.gauss(100.0, 20.0) + (60.0 if self.drift else 0.0)
        score = min(0.99, max(0.01, self.rng.random() * 0.5 + (amount - 80.0) / 200.0))
        truth = int(self.rng.random() < score)
        features = {"amount": amount, "age": self.rng.gauss(40.0, 10.0),
                    "country": self.rng.choice(["DE", "FR", "NL"]),
                    "items": self.rng.randint(1, 9) if i % 50 else None}
        rid = f"r-{i}"
        self.client.record(rid, features, int(score > 0.5), score=score,
                           group="ab"[i % 2])
        self.client.label(rid, truth)

    def _run(self) -> None:
        i, began = 0, time.monotonic()
        while not self.stopped.is_set():
            self._row(i)
            i += 1
            self.stopped.wait(max(0.0, began + i / self.rate - time.monotonic()))


class LiveAgent:
    def __init__(self, folder: Path, extra: str = "") -> None:
        self.folder = folder
        self.mosquitto = Mosquitto(folder / "mqtt").start()
        self.scenario = folder / "gpus.json"
        gpus = scenario(2, xids=[{"gpu": 0, "xid": 79, "seq": 1}])
        gpus["gpus"][1]["values"]["clocks_event_reasons"] = POWER_CAP
        self.scenario.write_text(json.dumps(gpus))
        self.port = free_port()
        self.socket = folder / "ingest.sock"
        self.config = folder / "agent.toml"
        self.config.write_text(CONFIG.format(
            state=folder / "state", port=self.port, scenario=self.scenario,
            mqtt_port=self.mosquitto.port, socket=self.socket) + extra)
        self.agent: AgentProcess = start_agent(self.config, self.port)
        self.traffic = Traffic(self.socket)
        self.traffic.thread.start()
        self._send_garbage()

    def restart(self) -> None:
        """The agent again on the same config and state (the traffic keeps flowing)."""
        self.agent.stop()
        self.agent = start_agent(self.config, self.port)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _send_garbage(self) -> None:
        """A record without a model and one without a request id: counted rejects."""
        import socket  # noqa: PLC0415

        with socket.socket(socket.AF_UNIX) as sock:
            poll(lambda: sock.connect(str(self.socket)) or True, what="ingest socket")
            sock.sendall(b'{"request_id": "x", "prediction": 1}\n{"model": "fraud"}\n')

    def exposition(self) -> str:
        return http_get(f"http://{self.target}/metrics")

    def stop(self) -> None:
        self.traffic.stopped.set()
        self.traffic.thread.join(5)
        self.agent.stop()
        self.mosquitto.stop()
