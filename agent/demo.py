"""`inferwatch demo`: the agent plus a small model server, so the metrics have something to say.

A logistic regression trained on scikit-learn's bundled breast-cancer data serves requests
through the client SDK; labels come back `label_delay` seconds later; after `drift_after`
seconds the inputs shift (as if a new scanner were calibrated differently), and both the
label-free estimates and, once labels arrive, the realized metrics move.
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
below = 0.85
clear = 0.9
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

    server = ModelServer()
    with tempfile.TemporaryDirectory(prefix="inferwatch-demo-") as folder:
        root = Path(folder)
        socket_path = root / "ingest.sock"
        config = root / "demo.toml"
        config.write_text(CONFIG.format(state=root / "state", listen=listen, model=MODEL,
                                        socket=socket_path, label_wait=label_delay * 2,
                                        window=window))
        agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            print(f"inferwatch demo: agent on http://{listen}/metrics — model {MODEL!r}, "
                  f"{rate:g} requests/s, labels after {label_delay:g}s, drift after "
                  f"{drift_after:g}s. Ctrl-C stops.", flush=True)
            inferwatch.configure(socket_path=str(socket_path), model=MODEL, model_version="1")
            _serve(server, inferwatch, agent, seconds=seconds, drift_after=drift_after,
                   rate=rate, label_delay=label_delay, listen=listen)
        except KeyboardInterrupt:
            pass
        finally:
            agent.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(15)
            if agent.poll() is None:
                agent.kill()
    return 0


def _serve(server: ModelServer, sdk: Any, agent: subprocess.Popen[bytes], *, seconds: float,
           drift_after: float, rate: float, label_delay: float, listen: str) -> None:
    began = time.monotonic()
    report_every = 10.0 if seconds <= 0 or seconds > 60 else 5.0
    pending: list[tuple[float, str, int]] = []
    sent, next_report = 0, began + 10
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
            print(_report(listen, now - began, drifted), flush=True)
        time.sleep(max(0.0, began + sent / rate - time.monotonic()))


def _report(listen: str, elapsed: float, drifted: bool) -> str:
    wanted = {"inferwatch_samples_received_total": "samples",
              "inferwatch_model_accuracy": "accuracy",
              "inferwatch_model_estimated_accuracy": "estimated",
              "inferwatch_model_window_labeled_samples": "labelled",
              "inferwatch_drift_detected": "drift"}
    found: dict[str, str] = {}
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in wanted and MODEL in line:
                    found[wanted[name]] = f"{float(line.rsplit(' ', 1)[1]):.3f}".rstrip(
                        "0").rstrip(".")
    except OSError:
        return f"[{elapsed:4.0f}s] agent not answering yet"
    state = "drifted inputs" if drifted else "normal inputs"
    shown = " ".join(f"{k}={v}" for k, v in found.items()) or "waiting for the first window"
    return f"[{elapsed:4.0f}s] {state}: {shown}"
