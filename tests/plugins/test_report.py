"""The replay report: what it draws from replay lines, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.ingest.report.render import group, payload, render
from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]
T0 = 1_800_000_000


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def window_lines(windows: int, features: int, *, kind: str = "binary", model: str = "fraud",
                 seed: int = 1) -> list[dict[str, Any]]:
    """Replay window lines of the shape replay prints, drift growing in the second half."""
    rng = random.Random(seed)
    lines = []
    for w in range(windows):
        drifted = w >= windows // 2
        if kind == "regression":
            metrics: dict[str, Any] = {"mae": rng.random(), "rmse": rng.random(),
                                       "r2": rng.random()}
        elif kind == "multiclass":
            metrics = {"accuracy": rng.random(), "f1": {"macro": rng.random(), "micro": 0.5,
                                                         "weighted": 0.5, "per_class": {"a": 0.1}}}
        else:
            metrics = {"accuracy": 0.9 - 0.4 * drifted, "f1": rng.random()}
        ratios = {f"f{i}": rng.random() * (4 if drifted and i < 3 else 0.8)
                  for i in range(features)}
        lines.append({
            "type": "window", "model": model, "model_version": "2", "window": "1h",
            "start": _iso(T0 + 3600 * w), "end": _iso(T0 + 3600 * (w + 1)), "final": True,
            "n": 1000, "n_labeled": 500, "metrics": metrics,
            "estimated": {"accuracy": 0.9, "error": {"accuracy": 0.02}} if kind == "binary" else {},
            "estimation_gap": {"accuracy": -0.4 * drifted} if kind == "binary" else {},
            "drift": {"features": {name: {"ratio": r, "drifted": r > 1}
                                   for name, r in ratios.items()}},
            "quality": {"features": {"f0": {"null": 0.01 * drifted}}},
            "fairness": {"groups": {"a": {"samples": 10, "tpr": 0.5}, "b": {"samples": 9}},
                         "demographic_parity_difference": 0.1},
        })
    lines.append({"type": "event", "kind": "drift.detected", "severity": "warning",
                  "ts": _iso(T0 + 3600 * windows // 2), "attributes": {"model": model}})
    return lines


def test_payload_keeps_the_final_line_of_each_window_and_rounds() -> None:
    lines = window_lines(4, 3)
    provisional = dict(lines[0], final=False, metrics={"accuracy": 0.123456789})
    (stream,) = group([provisional, *lines])
    data = payload(stream)
    assert len(data["t"]) == 4
    assert data["metrics"]["accuracy"]["realized"] == [0.9, 0.9, 0.5, 0.5]
    assert data["metrics"]["accuracy"]["error"][0] == 0.02
    assert set(data["drift"]["features"][:3]) == {"f0", "f1", "f2"}  # the drifting ones first
    assert data["fairness"]["groups"][0] == {"group": "a", "samples": 10.0, "tpr": 0.5}
    assert [e["kind"] for e in data["events"]] == ["drift.detected"]


def test_multiclass_is_drawn_by_its_macro_average_and_regression_by_its_errors() -> None:
    (multi,) = group(window_lines(3, 2, kind="multiclass"))
    assert payload(multi)["metrics"]["f1"]["realized"] == [
        float(f'{m["metrics"]["f1"]["macro"]:.5g}') for m in multi.windows]
    (reg,) = group(window_lines(3, 2, kind="regression"))
    assert set(payload(reg)["metrics"]) == {"mae", "rmse", "r2"}


def test_events_go_to_their_own_model() -> None:
    lines = window_lines(2, 2, model="a") + window_lines(2, 2, model="b")
    lines.append({"type": "event", "kind": "gpu.xid", "ts": _iso(T0), "attributes": {"xid": 79}})
    streams = {s.model: [e["kind"] for e in payload(s)["events"]] for s in group(lines)}
    assert streams == {"a": ["drift.detected", "gpu.xid"], "b": ["drift.detected", "gpu.xid"]}


finite = st.floats(allow_nan=True, allow_infinity=True) | st.none() | st.text(max_size=5)


@given(st.lists(st.fixed_dictionaries({
    "type": st.just("window"), "model": st.text(max_size=8), "end": st.just(_iso(T0)),
    "metrics": st.dictionaries(st.sampled_from(["accuracy", "f1", "mae"]), finite),
    "drift": st.fixed_dictionaries({"features": st.dictionaries(
        st.text(max_size=8), st.fixed_dictionaries({"ratio": finite}))}),
}), max_size=5))
def test_any_window_lines_render_to_valid_embedded_json(lines: list[dict[str, Any]]) -> None:
    page = render(lines)
    body = re.search(r'id="report-data">(.*?)</script>', page, re.DOTALL)
    assert body is not None
    data = json.loads(body.group(1))  # NaN and infinities are dropped, never emitted
    assert len(data["streams"]) == len({str(line["model"]) for line in lines})


def _chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={page.parent / 'chromium'}",
                           *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=90, check=False)


def _drawn(page: Path) -> tuple[int, list[str]]:
    dom = _chromium(page, "--dump-dom").stdout
    charts = re.search(r'data-charts="(\d+)"', dom)
    errors = re.search(r'data-errors="([^"]*)"', dom)
    assert charts, dom[-2000:]
    assert errors, dom[-2000:]
    return int(charts.group(1)), json.loads(errors.group(1).replace("&quot;", '"'))


def _expected_charts(lines: list[dict[str, Any]]) -> int:
    total = 0
    for stream in group(lines):
        data = payload(stream)
        gaps = any(v is not None for m in data["metrics"].values() for v in m["gap"])
        total += len(data["metrics"]) + gaps + bool(data["drift"]["features"])
        total += len(data["drift"]["distributions"]) + bool(data["events"])
    return total


@needs_chromium
@pytest.mark.timeout(180)
def test_a_real_replay_report_draws_every_chart_in_chromium(tmp_path: Path) -> None:
    samples, labels = tmp_path / "s.ndjson", tmp_path / "l.ndjson"
    _write_stream(samples, labels)
    page = tmp_path / "report.html"
    out = subprocess.run([sys.executable, "-m", "agent", "replay", "--samples", str(samples),
                          "--labels", str(labels), "--window", "30m", "--report", str(page)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert f"report written to {page}" in out.stderr
    assert "fairness" in page.read_text()  # the grouped stream's table is in the data
    (stream,) = group(lines)
    shown = payload(stream)["drift"]["distributions"]
    assert {d["feature"] for d in shown} >= {"x"}  # the drifted feature, reference vs current
    assert all(sum(d["current"]) == pytest.approx(1, abs=1e-3) for d in shown)
    charts, errors = _drawn(page)
    assert errors == []
    assert charts == _expected_charts(lines) >= 6
    screenshot, blank = tmp_path / "report.png", tmp_path / "blank.png"
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    _chromium(page, "--window-size=1280,2000", f"--screenshot={screenshot}")
    _chromium(tmp_path / "blank.html", "--window-size=1280,2000", f"--screenshot={blank}")
    # A blank page compresses to almost nothing; charts, axes and text do not.
    assert screenshot.stat().st_size > 10 * blank.stat().st_size


def _write_stream(samples: Path, labels: Path, n: int = 12_000) -> None:
    """Predictions every 0.36 s; the inputs shift halfway and the labels turn against them."""
    rng = random.Random(5)
    with samples.open("w") as s, labels.open("w") as lab:
        for i in range(n):
            drifted = i > n // 2
            x = rng.gauss(0.8 if drifted else 0.0, 1.0)
            p = 1 / (1 + math.exp(-2 * x))
            s.write(json.dumps({"model": "fraud", "model_version": "3", "request_id": f"r{i}",
                                "ts": T0 + i * 0.36, "prediction": int(p > 0.5), "score": p,
                                "group": "ab"[i % 2],
                                "features": {"x": x, "age": rng.gauss(40, 10),
                                             "c": rng.choice("abcd" if drifted else "abc")}})
                    + "\n")
            truth = int(rng.random() < (1 - p if drifted else p))
            lab.write(json.dumps({"model": "fraud", "request_id": f"r{i}", "label": truth,
                                  "ts": T0 + i * 0.36 + 30}) + "\n")


@needs_chromium
@pytest.mark.timeout(180)
def test_a_thousand_windows_of_fifty_features_stay_small_and_draw(tmp_path: Path) -> None:
    lines = window_lines(1000, 50)
    page = tmp_path / "big.html"
    page.write_text(render(lines))
    assert page.stat().st_size < 4 << 20  # "a few MB", ECharts' 1.1 MB included
    charts, errors = _drawn(page)
    assert errors == []
    assert charts == _expected_charts(lines)


@needs_chromium
def test_names_from_clients_are_text_not_markup(tmp_path: Path) -> None:
    evil = '</script><img src=x onerror="document.title=1">'
    lines = window_lines(3, 2, model=evil)
    lines[0]["drift"]["features"][evil] = {"ratio": 2.0}
    page = tmp_path / "evil.html"
    page.write_text(render(lines, title=evil, config=evil))
    dom = _chromium(page, "--dump-dom").stdout
    assert '<img src="x"' not in dom  # an element would be serialized with quotes
    charts, errors = _drawn(page)
    assert errors == []
    assert charts == _expected_charts(lines)


def test_report_command_reads_saved_lines_and_skips_what_is_not_json(tmp_path: Path) -> None:
    saved = tmp_path / "replay.ndjson"
    saved.write_text("\n".join(json.dumps(line) for line in window_lines(3, 2))
                     + "\nnot json\n[1, 2]\n")
    out = subprocess.run([sys.executable, "-m", "agent", "report", str(saved), "-o",
                          str(tmp_path / "r.html")], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    assert "1 lines that are not JSON were left out" in out.stderr
    body = re.search(r'id="report-data">(.*?)</script>', (tmp_path / "r.html").read_text(),
                     re.DOTALL)
    assert body is not None
    assert [s["model"] for s in json.loads(body.group(1))["streams"]] == ["fraud"]
    missing = subprocess.run([sys.executable, "-m", "agent", "report", str(tmp_path / "no")],
                             capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert missing.returncode == 78
    assert "no such file" in missing.stderr


def test_the_reports_config_masks_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """The report travels (mail, tickets): a URL's user:password and a literal secret-named
    value are masked; a {file}/{env} reference says where, not what, and stays."""
    import argparse  # noqa: PLC0415

    from plugins.ingest.command import config_text  # noqa: PLC0415

    config = tmp_path / "agent.toml"
    config.write_text('[plugins.mlflow]\ntracking_uri = "https://bob:hunter2@ml.example/"\n'
                      'token = {file = "/etc/t"}\napi_token = "abc123"\n')
    monkeypatch.setattr(sys, "argv", ["inferwatch", "replay", "--reference",
                                      "https://eve:pw@x/ref.json"])
    text = config_text(argparse.Namespace(config=config))
    assert "hunter2" not in text
    assert "abc123" not in text
    assert ":pw@" not in text
    assert 'token = {file = "/etc/t"}' in text
def test_events_without_a_model_do_not_multiply_the_page_by_the_streams() -> None:
    """An event without a model belongs to every stream: 50 streams and 20,000 GPU events
    made an 84 MB page. Each stream keeps its latest MAX_EVENTS and says how many there were."""
    from plugins.ingest.report.render import MAX_EVENTS  # noqa: PLC0415

    lines: list[dict[str, Any]] = [
        {"type": "window", "model": f"m{m}", "model_version": str(v), "end": _iso(T0),
         "metrics": {"accuracy": 0.9}} for m in range(10) for v in range(5)]
    lines += [{"type": "event", "kind": "gpu.xid", "ts": _iso(T0 + i), "severity": "warning",
               "attributes": {"gpu": "0", "xid": str(i)}} for i in range(20_000)]
    page = render(lines)
    assert len(page) < 8_000_000
    body = re.search(r'id="report-data">(.*?)</script>', page, re.DOTALL)
    assert body is not None
    streams = json.loads(body.group(1))["streams"]
    assert len(streams) == 50
    for stream in streams:
        assert stream["events_total"] == 20_000
        assert len(stream["events"]) == MAX_EVENTS
        assert stream["events"][-1]["detail"] == "gpu=0, xid=19999"
