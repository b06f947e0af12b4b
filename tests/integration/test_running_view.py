"""With the default one-hour windows, model metrics show within seconds, marked as running."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score

from tests.conftest import ConfigWriter
from tests.helpers import poll, value

pytestmark = pytest.mark.integration
RUNNING = {"model": "fraud", "model_version": "3", "window": "1h:running"}


def test_a_newcomer_sees_model_metrics_before_the_hour_is_over(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    sock = tmp_path / "ingest.sock"
    config, port = write_config(  # the default windows and label wait: one hour each
        f'[plugins.host]\nenabled = false\n[plugins.ingest]\nenabled = true\n'
        f'interval = "200ms"\nsocket_path = "{sock}"\nrunning_every = "1s"\n'
        '[plugins.quality]\nenabled = true\ninterval = "200ms"\n'
        '[plugins.quality.thresholds.accuracy]\nbelow = 0.99\nmin_samples = 10\n')
    agent = agent_factory(config, port)
    predictions = [i % 2 for i in range(300)]
    labels = [p if i % 4 else 1 - p for i, p in enumerate(predictions)]
    lines = [{"model": "fraud", "model_version": "3", "request_id": f"r{i}",
              "features": {"x": i}, "prediction": p, "score": 0.3 + 0.4 * p}
             for i, p in enumerate(predictions)]
    lines += [{"model": "fraud", "request_id": f"r{i}", "label": y} for i, y in enumerate(labels)]
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        conn.sendall(b"".join(json.dumps(line).encode() + b"\n" for line in lines))

    def labelled_view() -> dict | None:
        m = agent.scrape()
        return m if value(m, "inferwatch_model_window_labeled_samples", **RUNNING) == 300 else None

    metrics = poll(labelled_view, 20, what="a running view with every label")
    assert value(metrics, "inferwatch_model_accuracy", **RUNNING) == pytest.approx(
        accuracy_score(labels, predictions))
    assert value(metrics, "inferwatch_model_window_final", **RUNNING) == 0
    assert value(metrics, "inferwatch_model_window_samples", **RUNNING) == 300
    assert value(metrics, "inferwatch_model_accuracy", model="fraud", model_version="3",
                 window="1h") is None, "no closed window yet"
    assert value(metrics, "inferwatch_events_emitted_total", kind="quality.degraded") is None
