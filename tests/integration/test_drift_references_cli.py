"""`inferwatch reference build` without `--model-version`, then `replay --reference` on
versioned samples, as a user runs them (#12 item 3)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.integration.test_replay import _training, _write

pytestmark = pytest.mark.integration
T0 = 1_800_000_000


def _samples(tmp_path: Path, shift: float) -> Path:
    """Two hours of a model version "3", shifted from the first row on."""
    rng = random.Random(7)
    return _write(tmp_path / "samples.ndjson", [
        {"model": "fraud", "model_version": "3", "request_id": f"r{i}", "ts": T0 + i,
         "prediction": 1, "score": 0.5,
         "features": {"x": rng.gauss(shift, 1.0), "country": rng.choice(["DE", "FR"])}}
        for i in range(7200)])


def _summary(stderr: str) -> dict[str, Any]:
    line = next(x for x in stderr.splitlines() if x.startswith("inferwatch: replayed "))
    found: dict[str, Any] = json.loads(line.removeprefix("inferwatch: replayed "))
    return found


def test_a_reference_without_a_version_applies_and_the_summary_says_so(tmp_path: Path
                                                                       ) -> None:
    train = _training(tmp_path)
    reference = tmp_path / "ref.json"
    built = run_cli("reference", "build", "--from", str(train), "--model", "fraud",
                    "--out", str(reference))  # no --model-version
    assert built.returncode == 0, built.stderr
    done = run_cli("replay", "--samples", str(_samples(tmp_path, 0.8)), "--window", "1h",
                   "--reference", str(reference))
    assert done.returncode == 0, done.stderr
    windows = [w for w in map(json.loads, done.stdout.splitlines()) if w["type"] == "window"]
    first = windows[0]
    assert first["model_version"] == "3"
    assert first["drift"]["features"]["x"]["drifted"], "judged against the file, not captured"
    (stream,) = _summary(done.stderr)["streams"]
    assert (stream["model"], stream["model_version"]) == ("fraud", "3")
    assert stream["drift_reference"] == str(reference)
    assert stream["drift_reference_rows"] == 5000
    assert "matched no stream" not in done.stderr


def test_a_reference_that_matches_no_stream_is_a_warning(tmp_path: Path) -> None:
    rng = random.Random(6)
    train = _write(tmp_path / "train.ndjson", [
        {"model": "frod", "request_id": i, "prediction": 1, "score": 0.5,
         "features": {"x": rng.gauss(0, 1)}} for i in range(500)])
    reference = tmp_path / "typo.json"
    assert run_cli("reference", "build", "--from", str(train), "--model", "frod",
                   "--model-version", "3", "--out", str(reference)).returncode == 0
    done = run_cli("replay", "--samples", str(_samples(tmp_path, 0.0)), "--window", "1h",
                   "--reference", str(reference))
    assert done.returncode == 0, done.stderr
    warning = next(json.loads(x) for x in done.stderr.splitlines()
                   if "matched no stream" in x)
    assert warning["reference"] == str(reference)
    assert warning["model"] == "frod"
    assert warning["streams_seen"] == ["fraud/3"]
    (stream,) = _summary(done.stderr)["streams"]
    assert stream["drift_reference"].startswith("none yet: capturing")


def test_reference_build_says_which_values_it_set_aside(tmp_path: Path) -> None:
    rng = random.Random(8)
    rows = ["amount"] + [f"{rng.gauss(0, 1):.4f}" for _ in range(999)] + ["1.5e308"]
    source = tmp_path / "train.csv"
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ref.json"
    built = run_cli("reference", "build", "--from", str(source), "--model", "m",
                    "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert 'values set aside as extreme or non-finite: {"amount": {"extreme": 1}}' \
        in built.stderr
    profile = json.loads(out.read_text())["numeric"]["amount"]
    assert 0.9 < profile["std"] < 1.1
    assert profile["extreme"] == 1


def test_reference_build_from_recorded_traffic_of_several_versions(tmp_path: Path) -> None:
    """Production samples carry their model_version; without --model-version the reference
    takes every version of the model (it ended in a traceback, exit 70)."""
    rng = random.Random(3)
    source = _write(tmp_path / "recorded.ndjson", [
        {"model": "fraud", "model_version": str(1 + i % 3), "request_id": f"r{i}",
         "ts": T0 + i, "prediction": 1, "score": 0.5, "features": {"x": rng.gauss(0, 1)}}
        for i in range(3000)] + [{"model": "other", "request_id": "o", "prediction": 1}])
    out = tmp_path / "ref.json"
    done = run_cli("reference", "build", "--from", str(source), "--model", "fraud",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    profile = json.loads(out.read_text())
    assert (profile["model"], profile["model_version"], profile["count"]) == ("fraud", "", 3000)


def test_reference_build_reads_spreadsheet_csv(tmp_path: Path) -> None:
    """A byte-order mark is not part of the first column's name, and `nan`/`inf` cells keep
    a column numeric (they made it categorical)."""
    rows = [f"{i * 0.5},{'nan' if i % 50 == 0 else i},{'inf' if i == 7 else -i}"
            for i in range(500)]
    source = tmp_path / "train.csv"
    source.write_bytes(b"\xef\xbb\xbf" + ("amount,age,score\n" + "\n".join(rows)).encode())
    out = tmp_path / "ref.json"
    done = run_cli("reference", "build", "--from", str(source), "--model", "m",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    profile = json.loads(out.read_text())
    assert sorted(profile["numeric"]) == ["age", "amount", "score"]
    assert profile["categorical"] == {}
    assert profile["numeric"]["age"]["count"] == 490  # nan: missing
    assert profile["numeric"]["score"]["non_finite"] == 1  # inf: set aside and counted


def test_reference_build_to_a_folder_or_a_missing_one_is_a_usage_error(tmp_path: Path) -> None:
    source = _write(tmp_path / "s.ndjson", [{"model": "m", "request_id": "a", "prediction": 1,
                                              "features": {"x": 1.0}}])
    for out in (tmp_path, tmp_path / "no" / "such" / "ref.json"):
        done = run_cli("reference", "build", "--from", str(source), "--model", "m",
                       "--out", str(out))
        assert done.returncode == 78, done.stderr
        assert done.stderr.startswith(f"inferwatch: error: --out: {out}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ndjson"]  # nothing left behind


def test_reference_build_warns_when_a_flood_of_names_pushes_features_out(
        tmp_path: Path) -> None:
    """A training file with more names than max_features kept the first names in name order
    and dropped the rest (real features among them) without a word."""
    source = _write(tmp_path / "train.ndjson", [
        {"model": "m", "request_id": f"r{i}", "ts": T0 + i, "prediction": 1, "score": 0.5,
         "features": {"x": float(i % 7), **{f"a{j:04d}": 1.0 for j in range(3 * i, 3 * i + 3)}}}
        for i in range(300)])
    out = tmp_path / "ref.json"
    built = run_cli("reference", "build", "--from", str(source), "--model", "m",
                    "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert "more feature names than [plugins.ingest] max_features" in built.stderr
    assert "x" not in json.loads(out.read_text())["numeric"]
    calm = _write(tmp_path / "calm.ndjson", [
        {"model": "m", "request_id": f"r{i}", "ts": T0 + i, "prediction": 1, "score": 0.5,
         "features": {"x": float(i % 7)}} for i in range(300)])
    quiet = run_cli("reference", "build", "--from", str(calm), "--model", "m",
                    "--out", str(tmp_path / "calm.json"))
    assert "max_features" not in quiet.stderr
