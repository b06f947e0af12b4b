"""`inferwatch replay` and `inferwatch reference build` as a user runs them."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.integration
T0 = 1_800_000_000  # on the hour


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(body) if path.suffix == ".gz" else body)
    return path


def _training(tmp_path: Path) -> Path:
    """5,000 training rows of the model "fraud", unshifted: what a reference is built from."""
    rng = random.Random(5)
    return _write(tmp_path / "train.ndjson", [
        {"model": "fraud", "request_id": i, "prediction": 1, "score": 0.5,
         "features": {"x": rng.gauss(0, 1), "country": rng.choice(["DE", "FR"])}}
        for i in range(5000)])


def _history(tmp_path: Path, *, shift_after: int = 10**9) -> tuple[Path, Path]:
    """Two hours at one prediction a second; labels 30 minutes later; a shift if asked."""
    rng = random.Random(3)
    samples, labels = [], []
    for i in range(7200):
        x = rng.gauss(0.8 if i >= shift_after else 0.0, 1.0)
        p = 1 / (1 + math.exp(-2 * x))
        samples.append({"model": "fraud", "model_version": "3", "request_id": f"r{i}",
                        "ts": T0 + i, "prediction": int(p > 0.5), "score": p,
                        "features": {"x": x, "country": rng.choice(["DE", "FR"])}})
        if i % 2 == 0:
            labels.append({"model": "fraud", "request_id": f"r{i}",
                           "label": int(rng.random() < p), "ts": T0 + i + 1800})
    samples.append({"model": "fraud"})  # unusable: refused, counted, not fatal
    return (_write(tmp_path / "samples.ndjson.gz", samples),
            _write(tmp_path / "labels.ndjson", labels))


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_replay_prints_windows_then_final_ones_then_events(tmp_path: Path) -> None:
    samples, labels = _history(tmp_path)
    done = run_cli("replay", "--samples", str(samples), "--labels", str(labels),
                   "--window", "1h")
    assert done.returncode == 0, done.stderr
    windows = [w for w in _lines(done.stdout) if w["type"] == "window"]
    assert [(w["start"], w["final"]) for w in windows] == [
        ("2027-01-15T08:00:00.000Z", False), ("2027-01-15T09:00:00.000Z", False),
        ("2027-01-15T08:00:00.000Z", True), ("2027-01-15T09:00:00.000Z", True)]
    first, final = windows[0], windows[2]
    assert first["n"] == 3600
    assert first["n_labeled"] == 900  # labels for the first half hour had come by the close
    assert final["n_labeled"] == 1800  # every label in the files
    assert 0.6 < final["metrics"]["accuracy"] < 0.9
    assert set(final["estimated"]) >= {"accuracy", "f1", "roc_auc", "error"}
    assert final["window"] == "1h"
    assert '"rejected": {"no_request_id": 1}' in done.stderr


def test_replay_is_deterministic_whatever_the_hash_seed(tmp_path: Path) -> None:
    samples, labels = _history(tmp_path, shift_after=3600)
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                      '[plugins.drift]\nenabled = true\nreference_samples = 1000\n'
                      '[plugins.quality]\nenabled = true\n')
    args = ("replay", "--samples", str(samples), "--labels", str(labels), "--window", "20m",
            "-c", str(config))
    outputs = {run_cli(*args, env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    events = [e for e in _lines(outputs.pop()) if e["type"] == "event"]
    assert "drift.detected" in {e["kind"] for e in events}  # the shifted hour
    assert all(e["ts"].startswith("2027-01-15T") for e in events)  # sample time, not now


def test_reference_build_then_replay_against_it(tmp_path: Path) -> None:
    samples, labels = _history(tmp_path, shift_after=0)  # all of it shifted
    train = _training(tmp_path)
    reference = tmp_path / "ref.json"
    built = run_cli("reference", "build", "--from", str(train), "--model", "fraud",
                    "--model-version", "3", "--out", str(reference))
    assert built.returncode == 0, built.stderr
    assert "5000 rows" in built.stdout
    done = run_cli("replay", "--samples", str(samples), "--labels", str(labels),
                   "--window", "1h", "--reference", str(reference))
    assert done.returncode == 0, done.stderr
    first = next(w for w in _lines(done.stdout) if w["type"] == "window")
    assert first["drift"]["features"]["x"]["drifted"]  # against training data from the start
    assert first["drift"]["top"][0]["feature"] == "x"


@pytest.mark.parametrize(("args", "message"), [
    (["--samples", "/nonexistent.ndjson"], "--samples: /nonexistent.ndjson: no such file"),
    (["--window", "1h/7m"], "the step must divide the size"),
    (["--reference", "/nonexistent.json"], "--reference: /nonexistent.json: no such file"),
])
def test_replay_usage_errors_exit_78(tmp_path: Path, args: list[str], message: str) -> None:
    samples = _write(tmp_path / "s.ndjson", [])
    base = ["replay", "--samples", str(samples)]
    if args[0] == "--samples":
        base = ["replay"]
    done = run_cli(*base, *args)
    assert done.returncode == 78
    assert message in done.stderr
