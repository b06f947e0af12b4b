"""`inferwatch replay` on input a real recording may hold: times in milliseconds or out of any
calendar, unreadable times, absurd window lengths. Each is refused and counted, or refused as
a usage error; never a traceback."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.integration
T0 = 1_800_000_000


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _summary(stderr: str) -> dict[str, Any]:
    return next(json.loads(line.split("replayed ", 1)[1]) for line in stderr.splitlines()
                if line.startswith("inferwatch: replayed "))


BAD_TIMES: list[Any] = [T0 * 1000, -1e300, 1e300, -62135596801, 253402300800,
                        "garbage", "2026-13-45T99:00:00Z", "1e400", "nan", "-inf",
                        "0001-01-01T00:00:00+01:00"]


def test_unusable_times_are_refused_and_counted(tmp_path: Path) -> None:
    good = [{"model": "m", "request_id": f"g{i}", "ts": T0 + i, "prediction": 1, "score": 0.9}
            for i in range(3)]
    bad = [{"model": "m", "request_id": f"b{i}", "ts": ts, "prediction": 1, "score": 0.9}
           for i, ts in enumerate(BAD_TIMES)]
    labels = [{"model": "m", "request_id": "g0", "label": 1, "ts": T0 + 10},
              {"model": "m", "request_id": "g1", "label": 1, "ts": T0 * 1000}]
    done = run_cli("replay", "--samples", str(_write(tmp_path / "s.ndjson", good + bad)),
                   "--labels", str(_write(tmp_path / "l.ndjson", labels)), "--window", "1h")
    assert done.returncode == 0, done.stderr
    summary = _summary(done.stderr)
    assert summary["samples"] == 3
    assert summary["rejected"] == {"invalid_field": len(BAD_TIMES) + 1}
    assert summary["labels"]["read"] == 1
    assert summary["labels"]["joined"] == 1
    windows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {w["start"] for w in windows} == {"2027-01-15T08:00:00.000Z"}


def test_a_window_longer_than_any_calendar_is_a_usage_error(tmp_path: Path) -> None:
    samples = _write(tmp_path / "s.ndjson",
                     [{"model": "m", "request_id": "a", "ts": T0, "prediction": 1}])
    done = run_cli("replay", "--samples", str(samples), "--window", "99999999999999999999d")
    assert done.returncode == 78, done.stderr
    assert done.stderr.startswith("inferwatch: error: --window: window '99999999999999999999d'")
    assert "Traceback" not in done.stderr


def test_a_file_out_of_time_order_prints_each_window_once_and_says_so(tmp_path: Path) -> None:
    """Two models' records in no order (an export without ORDER BY): each window once (a
    model's late record reopened windows another model had moved past, and printed them
    again), every sample counted, and stderr names the file."""
    rng = random.Random(2)
    rows = [{"model": m, "request_id": f"{m}-{i}", "ts": T0 + 600 * i, "prediction": 1,
             "score": 0.9} for m in ("a", "b") for i in range(100)]
    rng.shuffle(rows)
    samples = _write(tmp_path / "export.ndjson", rows)
    done = run_cli("replay", "--samples", str(samples), "--window", "1h")
    assert done.returncode == 0, done.stderr
    windows = [json.loads(line) for line in done.stdout.splitlines()]
    keys = [(w["model"], w["start"], w["final"]) for w in windows]
    assert len(keys) == len(set(keys))
    assert sum(w["n"] for w in windows if w["final"]) == 200
    summary = _summary(done.stderr)
    assert summary["samples"] == 200
    late = sum(1 for i, r in enumerate(rows) if r["ts"] < max(x["ts"] for x in rows[:i + 1]))
    assert summary["out_of_order"] == late > 100
    assert f"{late} records in {samples} were earlier than a record before them" in done.stderr


def test_scores_that_are_not_probabilities_are_counted_not_used(tmp_path: Path) -> None:
    """A model that sends logits as `score`: no estimated accuracy of 2.1 or ROC AUC of 14;
    the rows count as having no score, and `__score` carries the out-of-range rate."""
    rng = random.Random(4)
    samples, labels = [], []
    for i in range(400):
        z = rng.gauss(0.0, 3.0) + (2.0 if i % 2 else -2.0)  # a margin, mostly outside [0, 1]
        samples.append({"model": "m", "request_id": i, "ts": T0 + i, "prediction": int(z > 0),
                        "score": z, "features": {"z": z}})
        labels.append({"model": "m", "request_id": i, "label": int(z > 0), "ts": T0 + i + 1})
    outside = sum(1 for s in samples if not 0 <= s["score"] <= 1)
    done = run_cli("replay", "--samples", str(_write(tmp_path / "s.ndjson", samples)),
                   "--labels", str(_write(tmp_path / "l.ndjson", labels)), "--window", "1h")
    assert done.returncode == 0, done.stderr
    final = [w for w in map(json.loads, done.stdout.splitlines())
             if w["type"] == "window" and w["final"]]
    assert len(final) == 1
    window = final[0]
    assert window["metrics"]["accuracy"] == 1.0
    for value in (*window["estimated"].values(), window["metrics"].get("roc_auc", 0.0),
                  window["metrics"].get("brier", 0.0)):
        assert not isinstance(value, float) or 0.0 <= value <= 1.0
    assert window["quality"]["features"]["__score"] == {"out_of_range_ratio": outside / 400}


def test_a_truncated_gzip_file_replays_what_it_holds_and_exits_65(tmp_path: Path) -> None:
    """An interrupted copy of a recording: no traceback; what came before the break is
    replayed, stderr names the file, and the exit status (65, EX_DATAERR) tells a script."""
    rows = [{"model": "m", "request_id": i, "ts": T0 + i, "prediction": 1, "score": 0.9,
             "features": {"x": i * 0.37}} for i in range(20_000)]
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    samples = tmp_path / "cut.ndjson.gz"
    samples.write_bytes(whole[: len(whole) // 2])
    done = run_cli("replay", "--samples", str(samples), "--window", "1h")
    assert done.returncode == 65, done.stderr
    assert "Traceback" not in done.stderr
    summary = _summary(done.stderr)
    assert 0 < summary["samples"] < 20_000
    assert len(summary["cut_short"]) == 1
    assert summary["cut_short"][0].startswith(f"{samples}: ")  # then Python's own words
    assert f"{samples} could not be read to its end" in done.stderr
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    done = run_cli("replay", "--samples", str(corrupt), "--window", "1h")
    assert done.returncode == 65, done.stderr
    assert "Traceback" not in done.stderr
    assert _summary(done.stderr)["cut_short"][0].startswith(f"{corrupt}: ")
