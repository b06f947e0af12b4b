"""`inferwatch_recorded_window`: the ingest plugin's answer is one window of every version
of the model, built as the agent builds windows; without a plugin that reads recordings,
`reference build --from FILE.ndjson` says what is missing instead of failing obscurely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.loader import discover
from plugins.drift.reference import build_reference


def _recording(path: Path) -> Path:
    rows = [{"model": "fraud", "model_version": str(i % 2), "request_id": f"r{i}",
             "prediction": 1, "score": 0.7, "features": {"x": float(i), "c": "DE"}}
            for i in range(300)]
    rows.append({"model": "other", "request_id": "o", "prediction": 0, "features": {"x": 1}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ingest_reads_a_recording_as_one_window(tmp_path: Path) -> None:
    found = discover()
    window = found.manager.hook.inferwatch_recorded_window(
        path=_recording(tmp_path / "r.ndjson"), model="fraud")
    assert (window.model, window.model_version, window.n) == ("fraud", "", 300)
    assert sorted(window.features["x"].tolist()) == [float(i) for i in range(300)]
    with pytest.raises(ConfigError, match="no predictions of model 'nope'"):
        found.manager.hook.inferwatch_recorded_window(path=tmp_path / "r.ndjson", model="nope")


def test_without_a_reader_of_recordings_the_build_says_so(tmp_path: Path) -> None:
    found = discover()
    found.manager.unregister(name="ingest")
    with pytest.raises(ConfigError, match="reading NDJSON needs the ingest plugin"):
        build_reference(_recording(tmp_path / "r.ndjson"), "fraud", "", found)
