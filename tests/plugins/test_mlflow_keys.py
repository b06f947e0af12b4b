"""Metric keys the MLflow sink makes from client-chosen names: every one is a key MLflow
accepts, or the server refuses the window's whole batch with a 400."""

from __future__ import annotations

import posixpath
import re

from hypothesis import given
from hypothesis import strategies as st

from agent.model import Event, Severity
from plugins.mlflow.sink import metric_key, window_metrics


def mlflow_accepts(name: str) -> bool:
    """mlflow/utils/validation.py (_validate_metric_name, 2.x and 3.x), the server's rule."""
    norm = posixpath.normpath(name)
    unique = not (norm != name or norm == "." or norm.startswith(("..", "/")))
    return bool(re.match(r"^[/\w.\- :]*$", name)) and unique and len(name) <= 250


@given(st.text(max_size=400))
def test_every_feature_name_makes_a_key_mlflow_accepts(feature: str) -> None:
    assert mlflow_accepts(metric_key("drift", feature))
    assert mlflow_accepts(metric_key("estimated_" + feature))


def test_path_like_feature_names_are_one_level_and_not_resolved() -> None:
    assert metric_key("drift", "..") == "drift/__"
    assert metric_key("drift", "") == "drift/_"
    assert metric_key("drift", "a/../b") == "drift/a_.._b"
    assert metric_key("drift", "temp °C") == "drift/temp _C"


def test_a_window_with_odd_feature_names_keeps_every_metric() -> None:
    event = Event(kind="drift.window", source="drift", host="h", severity=Severity.INFO,
                  attributes={"model": "m"},
                  data={"features": {"..": {"ratio": 2.0}, "x/": {"ratio": 0.5},
                                     "ok": {"ratio": 1.0}}, "drifted": True})
    metrics = window_metrics(event)
    assert metrics == {"drift/__": 2.0, "drift/x_": 0.5, "drift/ok": 1.0,
                       "drift_detected": 1.0}
    assert all(mlflow_accepts(key) for key in metrics)


def test_a_multiclass_metric_is_logged_as_its_macro_average() -> None:
    event = Event(kind="quality.window", source="quality", host="h", severity=Severity.INFO,
                  attributes={"model": "m"},
                  data={"metrics": {"f1": {"macro": 0.5, "per_class": {"a": 0.4}},
                                    "accuracy": 0.75},
                        "estimated": {"f1": {"macro": 0.25}}, "n": 10, "n_labeled": 4})
    assert window_metrics(event) == {"f1": 0.5, "accuracy": 0.75, "estimated_f1": 0.25,
                                     "samples": 10.0, "labeled_samples": 4.0}
