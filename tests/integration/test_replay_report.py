"""What `inferwatch replay` reports besides its windows: grouped streams, which monitors ran
and why none did, and what became of every label (issue 12, items 2, 5 and 6)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.integration
T0 = 1_800_000_000  # on the hour
DAY = 86400


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _stream(tmp_path: Path, *, n: int = 2400, delay: float = 1800, group: bool = False,
            extra_labels: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """A prediction a minute; a label for each, `delay` seconds later."""
    rng = random.Random(5)
    samples, labels = [], []
    for i in range(n):
        x = rng.gauss(0.0, 1.0)
        p = 1 / (1 + math.exp(-2 * x))
        sample = {"model": "credit", "model_version": "2", "request_id": f"r{i}",
                  "ts": T0 + 60 * i, "prediction": int(p > 0.5), "score": p,
                  "features": {"x": x, "region": rng.choice(["north", "south"])}}
        if group:
            sample["group"] = rng.choice(["a", "b", "c"])
        samples.append(sample)
        labels.append({"model": "credit", "request_id": f"r{i}", "label": int(rng.random() < p),
                       "ts": T0 + 60 * i + delay})
    labels = sorted(labels + (extra_labels or []), key=lambda r: r["ts"])
    return _write(tmp_path / "samples.ndjson", samples), _write(tmp_path / "labels.ndjson", labels)


def _replay(samples: Path, labels: Path, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any],
                                                            list[str]]:
    done = run_cli("replay", "--samples", str(samples), "--labels", str(labels), *args)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    summary = next(json.loads(line.split("replayed ", 1)[1]) for line in done.stderr.splitlines()
                   if line.startswith("inferwatch: replayed "))
    notes = [line for line in done.stderr.splitlines() if line.startswith("inferwatch: replay: ")]
    return lines, summary, notes


def test_a_grouped_stream_replays_with_fairness(tmp_path: Path) -> None:
    """It crashed: numpy TPR/FPR from the fairness section reached the JSON encoder."""
    lines, summary, _ = _replay(*_stream(tmp_path, group=True), "--window", "1d")
    final = [w for w in lines if w["type"] == "window" and w["final"]]
    assert final
    groups = final[0]["fairness"]["groups"]
    assert set(groups) == {"a", "b", "c"}
    assert all(0.0 <= g["tpr"] <= 1.0 and 0.0 <= g["fpr"] <= 1.0 for g in groups.values())
    assert summary["labels"]["joined"] == 2400


def test_a_config_for_the_agent_does_not_silence_the_monitors(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[plugins.ingest]\nlabel_ttl = "365d"\n')
    lines, summary, notes = _replay(*_stream(tmp_path), "--window", "1d", "-c", str(config))
    final = [w for w in lines if w["type"] == "window" and w["final"]]
    assert all(w["metrics"]["accuracy"] > 0.5 for w in final)
    assert all(w["estimated"] for w in final)
    assert summary["labels"]["joined"] == 2400
    assert notes == []


def test_monitors_turned_off_are_named_on_stderr(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[plugins.quality]\nenabled = false\n[plugins.drift]\nenabled = false\n")
    lines, _, notes = _replay(*_stream(tmp_path), "--window", "1d", "-c", str(config))
    assert all(w["metrics"] == {} and w["drift"] == {} for w in lines if w["type"] == "window")
    assert notes == [f"inferwatch: replay: no monitor ran: {config} turns off drift, quality "
                     "(enabled = false); drop those lines to replay with them"]


def test_labels_six_months_late_are_counted_as_expired_with_a_hint(tmp_path: Path) -> None:
    late = 183 * DAY
    extra = [{"model": "credit", "request_id": "never-predicted", "label": 1,
              "ts": T0 + late},
             {"model": "credit", "request_id": "r0", "label": 0, "ts": T0 + late + 1}]
    samples, labels = _stream(tmp_path, n=1000, delay=late, extra_labels=extra)
    _, summary, notes = _replay(samples, labels, "--window", "1d")
    assert summary["labels_joined"] == 0
    assert summary["labels"] == {"read": 1002, "joined": 0, "duplicate": 0, "expired": 1001,
                                 "unmatched": 1, "sampled_out": 0, "unknown_model": 0,
                                 "outside_windows": 0}
    assert any("label_ttl" in note and 'label_ttl = "184d"' in note and "1001 of 1002" in note
               for note in notes), notes
    config = tmp_path / "agent.toml"
    config.write_text('[plugins.ingest]\nlabel_ttl = "184d"\n')
    _, summary, notes = _replay(samples, labels, "--window", "1d", "-c", str(config))
    assert summary["labels"]["joined"] == 1000
    assert summary["labels"]["duplicate"] == 1  # r0's second label replaces the first
    assert summary["labels"]["unmatched"] == 1
    assert not [n for n in notes if "label_ttl" in n]


def test_the_summary_has_an_entry_per_stream(tmp_path: Path) -> None:
    _, summary, _ = _replay(*_stream(tmp_path), "--window", "1d")
    capturing = {"drift_reference": "none yet: capturing (2400 of 10000 rows)",
                 "drift_reference_rows": 2400}  # the drift monitor's part of the entry
    assert summary["streams"] == [{"model": "credit", "model_version": "2", "windows": 2,
                                   "samples": 2400, **capturing}]


def test_monitors_add_to_the_per_stream_summary(tmp_path: Path) -> None:
    """The place a monitor reports per stream, e.g. which drift reference it used."""
    _, summary, _ = _replay(*_stream(tmp_path), "--window", "1d", "-p", "iwtest.summary")
    (stream,) = summary["streams"]
    assert stream["summarized_rows"] == 2400
    assert stream["reference"] == "test"
    assert stream["drift_reference_rows"] == 2400  # and the drift monitor's, side by side


def test_monitors_that_found_nothing_say_why(tmp_path: Path) -> None:
    """Regression predictions, no labels, no reference: nothing to report, and it says so."""
    samples = _write(tmp_path / "samples.ndjson", [
        {"model": "price", "request_id": f"r{i}", "ts": T0 + 60 * i, "prediction": 1.5 * i + 0.25,
         "features": {"x": float(i)}} for i in range(300)])
    labels = _write(tmp_path / "labels.ndjson", [])
    lines, _, notes = _replay(samples, labels, "--window", "1d")
    assert all(w["metrics"] == {} and w["drift"] == {} for w in lines if w["type"] == "window")
    assert len(notes) == 1
    assert notes[0].startswith("inferwatch: replay: no monitor results in 2 windows from "
                               "drift, quality: quality needs labels")
    assert "reference_samples" in notes[0]


def test_labels_for_predictions_no_window_kept_are_outside_windows(tmp_path: Path) -> None:
    """Not `unmatched` (which sends users to check their request ids): their predictions came
    but a full window keeps a sample of them."""
    config = tmp_path / "agent.toml"
    config.write_text("[plugins.ingest]\nmax_window_samples = 1000\n")
    lines, summary, notes = _replay(*_stream(tmp_path, delay=DAY), "--window", "1d",
                                    "-c", str(config))
    labels = summary["labels"]
    final = [w for w in lines if w["type"] == "window" and w["final"]]
    assert labels["unmatched"] == 0
    # 16 hours (960 predictions) on the first day, all kept; 1,000 of 1,440 on the second
    assert labels["joined"] == sum(w["n_labeled"] for w in final) == 1960
    assert labels["outside_windows"] == 440
    assert sum(v for k, v in labels.items() if k != "read") == labels["read"] == 2400
    assert notes == []
