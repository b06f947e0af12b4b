"""Every built-in monitor's output is plain Python, whatever the window and the options.

Binary, multiclass and regression windows with every option on (groups, cost, thresholds
that fire, calibrated estimates, references given, configured or captured, retrain rules)
go through each monitor the plugins register, by the path the agent and `replay` share
(`process_window`). What comes out must encode with msgspec as a replay line and as an event
envelope (JSON for MQTT and webhooks, msgpack for the outbox), and hold no numpy value.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.components import Monitor, process_window
from agent.config import build_config
from agent.context import PluginContext
from agent.loader import discover
from agent.metrics import PluginMetrics
from agent.model import Event, Label, Sample
from agent.plain import is_plain, plain
from agent.window import Window
from plugins.drift.monitor import drift_columns
from plugins.drift.profile import build
from plugins.ingest.models import ModelConfig
from plugins.ingest.replay import _fixed, window_line
from plugins.ingest.windows import WindowStage
from plugins.quality.fairness import fairness

T0 = 1_800_000_000.0
CLASSES = ("a", "b", "c")
FIRES = {"below": 2.0, "min_samples": 1}  # thresholds every window crosses
ABOVE = {"above": -1e12, "min_samples": 1}


def _config(tmp_path: Path, reference: Path) -> dict[str, Any]:
    thresholds = dict.fromkeys(("accuracy", "f1", "precision", "recall", "roc_auc",
                                "estimated_accuracy", "estimated_f1", "r2"), FIRES)
    thresholds |= dict.fromkeys(("accuracy_gap", "f1_gap", "mae", "rmse", "cost",
                                 "demographic_parity_difference", "equalized_odds_difference",
                                 "missing", "prediction_class_ratio"), ABOVE)
    return {"agent": {"state_dir": str(tmp_path / "state")}, "plugins": {
        "quality": {"enabled": True, "reference_samples": 100, "min_group_size": 1,
                    "thresholds": thresholds, "models": {
                        "binary": {"cost": {"tp": -5.0, "fp": 1.5, "fn": 10.0, "tn": 0.0}},
                        "multi": {"cost": {"classes": list(CLASSES), "matrix": [
                            [0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]}}}},
        "drift": {"enabled": True, "reference_samples": 100, "persist_windows": 1,
                  "persist_of": 1, "models": {"regress": {"reference": str(reference)}},
                  "retrain": {"performance_below": 2.0, "cooldown": "1s",
                              "drift_persisted": "1s", "max_model_age": "1s"}}}}


def _record(task: str, i: int, rng: random.Random) -> tuple[Sample, Label]:
    shift = 1.5 if i >= 1800 else 0.0  # the second half drifts
    x, y = rng.gauss(shift, 1.0), rng.gauss(0.0, 1.0 + shift)
    features = {"x": x, "y": y if i % 50 else None, "c": rng.choice(["DE", "FR", "IT"])}
    common = {"model": task, "model_version": "1", "request_id": f"{task}-{i}",
              "ts": T0 + i, "features": features, "group": rng.choice(["f", "m", "x"])}
    if task == "binary":
        p = 1 / (1 + math.exp(-2 * x))
        sample = Sample(**common, prediction=int(p > 0.5), score=p)  # type: ignore[arg-type]
        truth: object = int(rng.random() < p)
    elif task == "multi":
        raw = [math.exp(x), math.exp(y), 1.0]
        scores = {c: v / sum(raw) for c, v in zip(CLASSES, raw, strict=True)}
        sample = Sample(**common, prediction=max(scores, key=scores.__getitem__),  # type: ignore[arg-type]
                        scores=scores)
        truth = rng.choices(CLASSES, weights=list(scores.values()))[0]
    else:
        sample = Sample(**common, prediction=2 * x + y)  # type: ignore[arg-type]
        truth = 2 * x + y + rng.gauss(0, 0.5)
    return sample, Label(model=task, request_id=sample.request_id, label=truth)


def _windows(task: str) -> list[Window]:
    """An hour at a sample a second in 10-minute windows, each delivered twice (before and
    after its labels), labels for most rows, groups, scores, a missing feature."""
    models = {task: ModelConfig(task="regression" if task == "regress" else "classification",
                                classes=list(CLASSES) if task == "multi" else [])}
    stage = WindowStage(models, ["10m"], label_wait=60.0)
    rng, out = random.Random(7), []
    for i in range(3600):
        ts = T0 + i
        out += stage.advance(ts)
        sample, label = _record(task, i, rng)
        stage.add(sample, ts, ts)
        if i % 7:
            stage.label(sample, label)
    return out + stage.flush()


def _monitors(tmp_path: Path, reference: Path) -> list[Monitor]:
    found = discover(strict=True)
    config = build_config(_config(tmp_path, reference), found.config_models())
    monitors = []
    for name, settings in sorted(config.plugins.items()):
        ctx = PluginContext(plugin=name, config=settings, host_id="h", state_root=tmp_path,
                            metrics=PluginMetrics(name, 1000), emitter=lambda _e: True)
        monitors += [c for c in found.call(name, "inferwatch_components", config=settings,
                                           ctx=ctx) or [] if isinstance(c, Monitor)]
    return monitors


def _reference(tmp_path: Path) -> Path:
    """A file reference for the regression model, from its own first window."""
    path = tmp_path / "regress.json"
    build(drift_columns(_windows("regress")[0]), model="regress", model_version="1").save(path)
    return path


def _check_event(event: Event, window: Window, seq: int) -> None:
    assert is_plain(event.data), event.kind
    assert is_plain(event.attributes), event.kind
    assert msgspec.json.decode(event.to_json())["kind"] == event.kind  # MQTT, webhooks
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(event), type=Event) == event  # outbox
    msgspec.json.encode({"type": "event", **msgspec.to_builtins(_fixed(event, window, seq))})


@pytest.mark.parametrize("task", ["binary", "multi", "regress"])
async def test_every_monitor_returns_plain_python(tmp_path: Path, task: str) -> None:
    monitors = _monitors(tmp_path, _reference(tmp_path))
    assert {type(m).__name__ for m in monitors} >= {"QualityMonitor", "DriftMonitor"}
    for monitor in monitors:
        if hasattr(monitor, "set_reference") and task == "binary":  # a --reference profile
            first = _windows(task)[0]
            monitor.set_reference(build(drift_columns(first), model=task, model_version="1"))
    kinds: set[str] = set()
    sections: set[str] = set()
    for window in _windows(task):
        for monitor in monitors:
            for seq, event in enumerate(await process_window(monitor, window)):
                _check_event(event, window, seq)
                kinds.add(event.kind)
            # A monitor with `plain_results` is trusted, not converted: this holds it to it.
            assert all(is_plain(v) for v in window.results.values()), type(monitor)
        line = window_line(window)
        assert is_plain(line), [k for k, v in line.items() if not is_plain(v)]
        msgspec.json.encode(line)
        sections |= {k for k, v in window.results.items() if v}
    for monitor in monitors:
        await monitor.stop()
    assert {"quality.degraded", "drift.detected", "retrain.requested"} <= kinds
    expected = {"metrics", "drift"} | ({"estimated", "estimation_gap", "cost"}
                                       if task != "regress" else set())
    assert expected | ({"fairness"} if task == "binary" else set()) <= sections


def test_plain_converts_numpy_at_any_depth() -> None:
    np = pytest.importorskip("numpy")
    found = plain({"a": np.float64(0.5), "b": [np.int64(3), np.bool_(True)],
                   "c": {np.str_("k"): np.arange(3)}, "d": (np.float32(1.5),),
                   "e": np.array([[1.0, np.nan]])})
    assert found == {"a": 0.5, "b": [3, True], "c": {"k": [0, 1, 2]}, "d": (1.5,),
                     "e": [[1.0, found["e"][0][1]]]}
    assert math.isnan(found["e"][0][1])
    assert is_plain(found)
    assert [type(v) for v in found["b"]] == [int, bool]
    assert not is_plain({"a": np.float64(0.5)})


def test_fairness_rates_are_python_numbers_at_the_source() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    found = fairness(np.array(["f", "m"] * 200, dtype=object), y_true, y_pred, 1,
                     min_group_size=10, max_groups=5)
    assert {"tpr", "fpr"} <= set(found["groups"]["f"])
    assert is_plain(found)


_leaves = (st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=4)
           | st.booleans() | st.none()
           | st.floats(-1e6, 1e6).map(np.float64) | st.integers(-1000, 1000).map(np.int64)
           | st.lists(st.floats(-1e3, 1e3), max_size=3).map(np.array))
_nested = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)


@given(_nested)
def test_the_fast_conversion_gives_what_the_python_walk_gives(value: object) -> None:
    from agent.plain import _walk  # noqa: PLC0415

    fast = plain(value)
    assert is_plain(fast)
    assert msgspec.json.encode(fast) == msgspec.json.encode(_walk(value))
