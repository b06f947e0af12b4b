"""`inferwatch demo`: the agent plus a small model server, so the metrics have something to say.

A logistic regression trained on scikit-learn's bundled breast-cancer data serves requests
through the client SDK; labels come back `label_delay` seconds later; after `drift_after`
seconds the inputs shift (as if a new scanner were calibrated differently), and both the
label-free estimates and, once labels arrive, the realized metrics move.

Timeline (W the window, L the label delay, D the drift time; defaults 30 s, 10 s, 60 s):
running views of the open window from the first seconds; the first closed window by W;
the realized-vs-estimated gap once a window is final and CBPE calibrated, by 2W + 2L;
`quality.degraded` and `drift.detected` by D + 2W (two minutes). Each event is printed
when the agent emits it. tests/integration/test_demo.py checks this on a shortened clock.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, StartupError

MODEL = "cancer"
SHIFTED = ("mean radius", "mean texture", "mean perimeter", "mean area", "worst radius")

CONFIG = """\
[agent]
state_dir = "{state}"
log_format = "console"
log_level = "warning"

[prometheus]
listen = "{listen}"

[plugins.host]
interval = "5s"

[plugins.ingest]
enabled = true
socket_path = "{socket}"
windows = ["{window}"]
label_wait = "{label_wait:g}s"
running_every = "{running_every:g}s"   # the open window's provisional view, this often

[plugins.ingest.models.{model}]
positive_class = "1"

[plugins.drift]
enabled = true
interval = "2s"
reference_samples = 500          # the first window's inputs, before the drift

[plugins.quality]
enabled = true
interval = "2s"
reference_samples = 500

[plugins.quality.thresholds.accuracy]
below = 0.93                     # 0.97 before the drift, 0.89 after it
clear = 0.95
min_samples = 200
"""


class ModelServer:
    def __init__(self, seed: int = 7) -> None:
        try:
            from sklearn.datasets import load_breast_cancer  # noqa: PLC0415
            from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
            from sklearn.model_selection import train_test_split  # noqa: PLC0415
            from sklearn.pipeline import make_pipeline  # noqa: PLC0415
            from sklearn.preprocessing import StandardScaler  # noqa: PLC0415
        except ImportError:
            raise ConfigError(["the demo needs scikit-learn: pip install 'inferwatch[demo]'"]
                              ) from None
        import numpy as np  # noqa: PLC0415

        data = load_breast_cancer()
        x_train, self.x, y_train, self.y = train_test_split(
            data.data, data.target, test_size=0.5, random_state=seed, stratify=data.target)
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        self.model.fit(x_train, y_train)
        self.names = [str(n) for n in data.feature_names]
        self.shift = np.zeros(len(self.names))
        spread = x_train.std(axis=0)
        for name in SHIFTED:
            i = self.names.index(name)
            self.shift[i] = 1.5 * spread[i]
        self.rng = np.random.default_rng(seed)

    def request(self, drifted: bool) -> tuple[dict[str, float], int, float, int]:
        """(features, prediction, score of class 1, true label)."""
        i = int(self.rng.integers(len(self.y)))
        row = self.x[i] * (1 + self.rng.normal(0, 0.02, len(self.names)))
        if drifted:
            row = row + self.shift
        score = float(self.model.predict_proba(row[None, :])[0, 1])
        features = {n: round(float(v), 5) for n, v in zip(self.names, row, strict=True)}
        return features, int(score > 0.5), score, int(self.y[i])


def run(*, seconds: float, drift_after: float, rate: float, label_delay: float,
        listen: str, window: str = "30s") -> int:
    import agent.client as inferwatch  # noqa: PLC0415
    from agent.window import WindowSpec  # noqa: PLC0415

    try:
        size = WindowSpec.parse(window).size
    except ValueError as exc:
        raise ConfigError([f"--window: {exc}"]) from None
    server = ModelServer()
    with tempfile.TemporaryDirectory(prefix="inferwatch-demo-") as folder:
        root = Path(folder)
        socket_path = root / "ingest.sock"
        config = root / "demo.toml"
        every = max(1.0, min(10.0, size / 2))  # a report and a running view per half window
        config.write_text(CONFIG.format(state=root / "state", listen=listen, model=MODEL,
                                        socket=socket_path, label_wait=label_delay * 2,
                                        window=window, running_every=every))
        agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_ready(listen, agent)
            print(f"inferwatch demo: agent on http://{listen}/metrics — model {MODEL!r}, "
                  f"{rate:g} requests/s, labels after {label_delay:g}s, drift after "
                  f"{drift_after:g}s. Ctrl-C stops.", flush=True)
            inferwatch.configure(socket_path=str(socket_path), model=MODEL, model_version="1")
            _serve(server, inferwatch, agent, seconds=seconds, drift_after=drift_after,
                   rate=rate, label_delay=label_delay, listen=listen, report_every=every,
                   window=window)
        except KeyboardInterrupt:
            pass
        finally:
            agent.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(15)
            if agent.poll() is None:
                agent.kill()
    return 0


def _wait_ready(listen: str, agent: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """The clock starts when the agent answers: its start-up is not part of the timeline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise StartupError(f"the agent exited with status {agent.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://{listen}/-/ready", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise StartupError(f"the agent did not answer on {listen} within {timeout:g}s")


def _serve(server: ModelServer, sdk: Any, agent: subprocess.Popen[bytes], *, seconds: float,
           drift_after: float, rate: float, label_delay: float, listen: str,
           report_every: float, window: str) -> None:
    began = time.monotonic()
    pending: list[tuple[float, str, int]] = []
    sent, next_report = 0, began + report_every
    events: dict[str, float] = {}
    while seconds <= 0 or time.monotonic() - began < seconds:
        if agent.poll() is not None:
            raise StartupError(f"the agent exited with status {agent.returncode}")
        now = time.monotonic()
        drifted = now - began >= drift_after
        features, prediction, score, truth = server.request(drifted)
        request_id = f"req-{sent}"
        sdk.record(request_id, features, prediction=prediction, score=score)
        heapq.heappush(pending, (now + label_delay, request_id, truth))
        while pending and pending[0][0] <= now:
            _, rid, label = heapq.heappop(pending)
            sdk.label(rid, label)
        sent += 1
        if now >= next_report:
            next_report += report_every
            for line in _report(listen, now - began, drifted, window, events):
                print(line, flush=True)
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))


WANTED = {"inferwatch_samples_received_total": "samples",
          "inferwatch_model_accuracy": "accuracy",
          "inferwatch_model_estimated_accuracy": "estimated",
          "inferwatch_model_estimation_gap": "gap",
          "inferwatch_model_window_labeled_samples": "labelled",
          "inferwatch_drift_detected": "drift"}
EVENTS = ("quality.degraded", "quality.recovered", "drift.detected", "retrain.requested")


def _report(listen: str, elapsed: float, drifted: bool, window: str,
            events: dict[str, float]) -> list[str]:
    """One line for the closed window, one for the running view, one per new event."""
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return [f"[{elapsed:4.0f}s] agent not answering yet"]
    closed: dict[str, str] = {}
    running: dict[str, str] = {}
    lines = []
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "inferwatch_events_emitted_total":
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            count = float(line.rsplit(" ", 1)[1])
            if kind in EVENTS and count > events.get(kind, 0):
                events[kind] = count
                lines.append(f"[{elapsed:4.0f}s] event: {kind}")
        elif name in WANTED and MODEL in line and 'metric="' not in line.replace(
                'metric="accuracy"', ""):
            shown = f"{float(line.rsplit(' ', 1)[1]):.3f}".rstrip("0").rstrip(".")
            target = running if f'window="{window}:running"' in line else closed
            target[WANTED[name]] = shown
    state = "drifted inputs" if drifted else "normal inputs"
    head = f"[{elapsed:4.0f}s] {state}: "
    out = [head + (" ".join(f"{k}={v}" for k, v in closed.items())
                   or "waiting for the first window")]
    if running:
        out.append(f"{' ' * len(head)}window so far ({window}:running): "
                   + " ".join(f"{k}={v}" for k, v in running.items() if k != "drift"))
    return out + lines
