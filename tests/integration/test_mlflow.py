"""The MLflow sink against a real `mlflow server` (SQLite backend) fed by a live agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, free_port, http_get, poll
from tests.integration.live import LiveAgent

pytestmark = pytest.mark.integration

SERVER = ROOT / ".venv-mlflow" / "bin" / "mlflow"
needs_mlflow = pytest.mark.skipif(
    not SERVER.exists() and shutil.which("mlflow") is None,
    reason="no MLflow server: `make test` installs one into .venv-mlflow")


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    binary = str(SERVER) if SERVER.exists() else str(shutil.which("mlflow"))
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"], stdout=log, stderr=log,
            start_new_session=True)  # it starts job runners of its own: stopped as a group
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: http_get(f"{url}/health"), 120, 0.5, "mlflow server")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import urllib.request  # noqa: PLC0415

    api = f"{url}/api/2.0/mlflow/{path}"
    if body is None:
        return dict(json.loads(http_get(api)))
    request = urllib.request.Request(api, data=json.dumps(body).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def _runs(url: str) -> list[dict[str, Any]]:
    name = urllib.parse.quote("inferwatch/fraud")
    experiment = _api(url, f"experiments/get-by-name?experiment_name={name}")["experiment"]
    return list(_api(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})
                .get("runs", []))


def _history(url: str, run_id: str, key: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": key})
    return list(_api(url, f"metrics/get-history?{query}").get("metrics", []))


@needs_mlflow
@pytest.mark.timeout(300)
def test_final_windows_and_drift_events_reach_mlflow(mlflow: str, tmp_path: Path) -> None:
    config = f'[plugins.mlflow]\nenabled = true\ntracking_uri = "{mlflow}"\n'
    live = LiveAgent(tmp_path, extra=config)
    try:
        runs = poll(lambda: _runs(mlflow), 60, 0.5, "a run in the model's experiment")
        (run,) = runs
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["inferwatch.model"] == "fraud"
        assert tags["inferwatch.model_version"] == "3"
        assert tags["inferwatch.window"] == "2s"
        assert run["info"]["run_name"] == "fraud v3 (2s)"
        run_id = run["info"]["run_id"]
        accuracy = poll(lambda: len(h := _history(mlflow, run_id, "accuracy")) >= 3 and h,
                        60, 0.5, "three final windows' accuracy")
        steps = sorted(m["step"] for m in accuracy)
        assert all(step % 2 == 0 for step in steps)  # the end of a 2 s window, in seconds
        assert len(set(steps)) == len(steps)  # each final window once
        assert all(0.0 <= m["value"] <= 1.0 for m in accuracy)
        for key in ("estimated_accuracy", "cost", "samples", "drift/amount"):
            assert _history(mlflow, run_id, key), key
        live.traffic.drift = True
        drifted = poll(lambda: [m for m in _history(mlflow, run_id, "drift/amount")
                                if m["value"] > 1.0], 60, 0.5, "the drift of amount")
        assert drifted
        tag = poll(lambda: _tag(mlflow, run_id, "inferwatch.last.drift.detected"), 60, 0.5,
                   "the drift event as a run tag")
        assert "amount" in tag
        live.restart()  # the same run is found again, not a second one made
        before = len(_history(mlflow, run_id, "accuracy"))
        poll(lambda: len(_history(mlflow, run_id, "accuracy")) > before, 60, 0.5,
             "windows logged after the restart")
        assert [r["info"]["run_id"] for r in _runs(mlflow)] == [run_id]
    finally:
        live.stop()


def _tag(url: str, run_id: str, key: str) -> str | None:
    run = _api(url, f"runs/get?run_id={run_id}")["run"]
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}.get(key)
