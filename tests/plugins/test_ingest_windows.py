"""Windows, columns and the sampling pipeline: pure code, driven by an explicit clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.model import Label, Sample
from agent.window import Window, WindowSpec
from plugins.ingest.models import FeatureSpec, ModelConfig, keep_by_hash, request_hash
from plugins.ingest.pipeline import UNKNOWN_MODEL, Pipeline, parse_ts
from plugins.ingest.windows import EARLY_LABELS, WindowStage

T0 = 1_800_000_000.0  # on the hour


def sample(i: int, **kw: object) -> Sample:
    fields: dict[str, object] = {"model": "m", "request_id": f"r{i}", "prediction": i % 2,
                                 "score": (i % 10) / 10, "features": {"x": float(i)}}
    fields.update(kw)
    return Sample(**fields)  # type: ignore[arg-type]


def run(stage: WindowStage, samples: list[tuple[Sample, float]]) -> list[Window]:
    out = []
    for s, ts in samples:
        out += stage.advance(ts)
        stage.add(s, ts, ts)
    return out + stage.flush()


@pytest.mark.parametrize(("text", "size", "step", "by_count"), [
    ("1h", 3600, 3600, False), ("1h/10m", 3600, 600, False), ("500n", 500, 500, True),
    ("1000n/250n", 1000, 250, True),
])
def test_window_specs(text: str, size: float, step: float, by_count: bool) -> None:
    spec = WindowSpec.parse(text)
    assert (spec.size, spec.step, spec.by_count) == (size, step, by_count)


@pytest.mark.parametrize(("text", "why"), [
    ("1h/7m", "divide"), ("10m/1h", "divide"), ("1h/100n", "both"), ("0n", "at least"),
    ("soon", "invalid duration"),
])
def test_bad_window_specs_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        WindowSpec.parse(text)


def test_tumbling_time_windows_are_aligned_and_count_everything() -> None:
    stage = WindowStage({}, ["1m"], label_wait=0)
    windows = run(stage, [(sample(i), T0 + 30 + i) for i in range(120)])  # 00:30 to 02:29
    assert [(w.start - T0, w.end - T0, w.n) for w in windows] == [
        (0, 60, 30), (60, 120, 60), (120, 180, 30)]
    assert all(w.final for w in windows)
    assert windows[1].features["x"].tolist() == [float(i) for i in range(30, 90)]


def test_sliding_windows_span_their_panes() -> None:
    stage = WindowStage({}, ["2m/1m"], label_wait=0)
    windows = run(stage, [(sample(i), T0 + i) for i in range(180)])
    assert [(w.start - T0, w.end - T0, w.n) for w in windows] == [
        (-60, 60, 60), (0, 120, 120), (60, 180, 120)]


def test_count_windows() -> None:
    stage = WindowStage({}, ["100n/50n"], label_wait=0)
    windows = run(stage, [(sample(i), T0 + i) for i in range(200)])
    assert [w.n for w in windows] == [50, 100, 100, 100]
    assert windows[-1].features["x"].tolist() == [float(i) for i in range(100, 200)]


def test_reservoir_bounds_rows_and_counts_all() -> None:
    stage = WindowStage({}, ["1h"], label_wait=0, max_rows=100)
    (window,) = run(stage, [(sample(i), T0 + i / 2) for i in range(5000)])
    assert window.n == 5000
    assert window.rows == 100
    x = window.features["x"]
    assert len(set(x.tolist())) == 100
    assert 1000 < x.mean() < 4000  # a uniform sample, not the first hundred


def test_labels_land_in_the_window_first_partly_then_final() -> None:
    stage = WindowStage({}, ["1m"], label_wait=600)
    samples = [sample(i) for i in range(60)]
    for i, s in enumerate(samples):
        stage.add(s, T0 + i, T0 + i)
        if i < 10:  # early labels, before the window closes
            stage.label(s, Label(model="m", request_id=s.request_id, label=1))
    (first,) = stage.advance(T0 + 60)
    assert not first.final
    assert int(first.labeled.sum()) == 10
    for s in samples[10:40]:  # late labels, after it closed
        stage.label(s, Label(model="m", request_id=s.request_id, label=0))
    assert stage.advance(T0 + 600) == []
    (final,) = stage.advance(T0 + 660)
    assert final.final
    assert int(final.labeled.sum()) == 40
    assert final.y_true[:10].tolist() == [final.classes.index("1")] * 10
    assert stage.streams[("m", "")].closed[WindowSpec.parse("1m")] == type(
        stage.streams[("m", "")].closed[WindowSpec.parse("1m")])()  # released once final


def test_classes_scores_and_the_positive_class() -> None:
    stage = WindowStage({}, ["1h"], label_wait=0)
    records = [sample(0, prediction=True, score=0.9), sample(1, prediction="0", score=0.2),
               sample(2, prediction=1.0, scores={"0": 0.4, "1": 0.6})]
    (window,) = run(stage, [(s, T0) for s in records])
    assert window.classes == ("0", "1")
    assert window.positive == 1
    assert window.y_pred.tolist() == [1, 0, 1]
    assert window.scores is not None
    np.testing.assert_allclose(window.scores, [[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])


def test_regression_is_detected() -> None:
    stage = WindowStage({}, ["1h"], label_wait=0)
    (window,) = run(stage, [(sample(i, prediction=i + 0.5, score=None), T0) for i in range(3)])
    assert window.task == "regression"
    assert window.y_pred.tolist() == [0.5, 1.5, 2.5]
    assert np.isnan(window.y_true).all()


def test_feature_quality_against_the_schema() -> None:
    config = ModelConfig(features={
        "amount": FeatureSpec(min=0, max=100),
        "country": FeatureSpec(type="category", categories=["DE", "FR"]),
    })
    rows: list[dict[str, object]] = [
        {"amount": 5, "country": "DE"}, {"amount": 500, "country": "XX"},
        {"amount": None, "country": ["DE"]}, {"amount": "many"}, {"amount": math.inf,
                                                                  "country": "FR"},
    ]
    stage = WindowStage({"m": config}, ["1h"], label_wait=0)
    (window,) = run(stage, [(sample(i, features=f), T0) for i, f in enumerate(rows)])
    assert window.quality["amount"] == {"null_ratio": 0.2, "out_of_range_ratio": 0.2,
                                        "wrong_type_ratio": 0.2, "non_finite_ratio": 0.2}
    assert window.quality["country"] == {"missing_ratio": 0.2, "unseen_category_ratio": 0.2,
                                         "wrong_type_ratio": 0.2}
    assert window.features["country"].tolist() == ["DE", "XX", None, None, "FR"]
    assert np.isnan(window.features["amount"][2:]).all()
    assert stage.quality[("m", "amount", "out_of_range")] == 1


def test_pipeline_rejects_unknown_models_once_models_are_declared() -> None:
    joined: list[object] = []
    stage = WindowStage({"m": ModelConfig()}, ["1h"])
    pipeline = Pipeline({"m": ModelConfig()}, stage, joined.extend)
    assert pipeline.offer(sample(1, model="typo"), T0, T0) == UNKNOWN_MODEL
    assert pipeline.offer(sample(1), T0, T0) == ""
    assert len(joined) == 1


def test_sampling_keeps_predictions_and_their_labels_alike() -> None:
    config = ModelConfig(sample_rate=0.25)
    joined: list[Sample | Label] = []
    pipeline = Pipeline({"m": config}, WindowStage({"m": config}, ["1h"]), joined.extend)
    for i in range(4000):
        pipeline.offer(sample(i), T0, T0)
        pipeline.offer(Label(model="m", request_id=f"r{i}", label=1), T0, T0)
    predictions = {r.request_id for r in joined if isinstance(r, Sample)}
    labels = {r.request_id for r in joined if isinstance(r, Label)}
    assert predictions == labels
    assert 800 < len(predictions) < 1200
    assert all(keep_by_hash(rid, 0.25) for rid in predictions)


def test_budget_and_stratification() -> None:
    config = ModelConfig(max_samples_per_second=10, stratify=True)
    stage = WindowStage({"m": config}, ["1h"], label_wait=0)
    pipeline = Pipeline({"m": config}, stage, lambda _: None)
    for second in range(10):
        for i in range(1000):  # 1% positives
            at = T0 + second + i / 1000
            pipeline.offer(sample(i, prediction=int(i % 100 == 0)), at, at)
    kept = pipeline.kept["m"]
    assert 90 <= kept <= 120
    assert pipeline.sampled_out[("m", "budget")] == 10_000 - kept
    (window,) = pipeline.windows.flush()
    assert int((window.y_pred == window.classes.index("1")).sum()) >= 40  # ~half, not 1%


@given(st.one_of(st.floats(allow_nan=True), st.text(max_size=40), st.none()))
def test_parse_ts_never_raises(value: object) -> None:
    result = parse_ts(None if value is None else str(value))
    assert result is None or math.isfinite(result)


def test_parse_ts_formats() -> None:
    assert parse_ts("2027-01-15T08:00:00Z") == 1_800_000_000.0
    assert parse_ts("1800000000.5") == 1_800_000_000.5
    assert parse_ts("2027-01-15T08:00:00+01:00") == parse_ts("2027-01-15T07:00:00Z")
    assert parse_ts("yesterday") is None


def test_a_full_pane_keeps_the_lowest_hashes_and_only_those_go_to_the_join() -> None:
    joined: list[Sample | Label] = []
    stage = WindowStage({}, ["1h"], label_wait=0, max_rows=50)
    pipeline = Pipeline({}, stage, joined.extend)
    batch = [sample(i) for i in range(2000)]
    for start in range(0, 2000, 100):
        assert pipeline.offer_many(batch[start:start + 100], T0) == {}
    lowest = sorted(batch, key=lambda s: request_hash(s.request_id))[:50]
    (pane,) = stage.streams[("m", "")].open.values()
    assert {s.request_id for s in pane.samples} == {s.request_id for s in lowest}
    assert pane.seen == 2000
    stored = {r.request_id for r in joined}
    assert stored >= {s.request_id for s in lowest}
    assert len(stored) < 400  # k(1 + ln(n/k)) ~ 234 predictions stored, not 2,000
    # A label whose prediction no pane can hold is not stored: it waits in memory (bounded),
    # and is counted outside the windows once it leaves.
    labels = [Label(model="m", request_id=s.request_id, label=1) for s in batch]
    joined.clear()
    pipeline.offer_many(labels, T0)
    assert {r.request_id for r in joined} == {s.request_id for s in lowest}
    assert len(stage._early) == 2000 - 50
    many = [Label(model="m", request_id=f"other-{i}", label=1) for i in range(20_000)]
    pipeline.offer_many(many, T0)
    held = sum(request_hash(label.request_id) > stage._limit("m") for label in many)
    assert len(stage._early) == EARLY_LABELS
    assert stage.counts["labels_outside_windows"] == 2000 - 50 + held - EARLY_LABELS
    # A model with no pane yet: its labels wait for their predictions.
    joined.clear()
    pipeline.offer_many([Label(model="new", request_id="x", label=1)], T0)
    assert len(joined) == 1


def test_a_label_before_its_prediction_still_joins_when_a_new_pane_keeps_it() -> None:
    joined: list[Sample | Label] = []
    stage = WindowStage({}, ["1m"], label_wait=0, max_rows=10)
    pipeline = Pipeline({}, stage, joined.extend)
    pipeline.offer_many([sample(i) for i in range(500)], T0)  # the pane is full
    late = next(sample(i) for i in range(500, 5000)
                if request_hash(f"r{i}") > stage._limit("m"))
    pipeline.offer_many([Label(model="m", request_id=late.request_id, label=1)], T0)
    assert not [r for r in joined if isinstance(r, Label)]  # held back, not stored
    joined.clear()
    pipeline.offer_many([late], T0 + 60)  # a new pane: it keeps the prediction
    assert [type(r).__name__ for r in joined] == ["Sample", "Label"]
    assert joined[1].request_id == late.request_id
    # Both in one batch, the label first, as the next pane opens:
    stage = WindowStage({}, ["1m"], label_wait=0, max_rows=10)
    pipeline = Pipeline({}, stage, joined.extend)
    pipeline.offer_many([sample(i) for i in range(500)], T0)
    joined.clear()
    pipeline.offer_many([Label(model="m", request_id=late.request_id, label=0), late], T0 + 60)
    assert [type(r).__name__ for r in joined] == ["Sample", "Label"]


@given(st.lists(st.integers(0, 2**32 - 1), max_size=300), st.integers(1, 40))
def test_bottom_k_matches_a_sort(hashes: list[int], cap: int) -> None:
    stage = WindowStage({}, ["1h"], label_wait=0, max_rows=cap)
    group = [sample(i) for i in range(len(hashes))]
    pane, _ = stage._pane(stage.stream(sample(0)), stage.default_specs[0], T0, T0)
    kept = pane.add_many(group, hashes, T0)
    survivors = sorted(range(len(hashes)), key=lambda i: (hashes[i], i))[:cap]
    in_pane = {int(s.request_id[1:]) for s in pane.samples}
    assert sorted(hashes[i] for i in in_pane) == sorted(hashes[i] for i in survivors)
    assert in_pane <= set(kept)
    assert pane.seen == len(hashes)


def test_categorical_features_come_as_codes_too_across_panes() -> None:
    stage = WindowStage({}, ["3m/1m"], label_wait=0)
    records = [sample(i, features={"c": ["DE", "FR", None][i % 3], "x": 1.0}) for i in range(60)]
    records += [sample(i, features={"x": 2.0}) for i in range(60, 120)]  # no "c" at all
    records += [sample(i, features={"c": ["US", "DE"][i % 2], "x": 3.0}) for i in range(120, 180)]
    windows = run(stage, [(s, T0 + i) for i, s in enumerate(records)])
    for window in windows:
        coded = window.coded["c"]
        decoded = [coded.levels[c] if c >= 0 else None for c in coded.codes.tolist()]
        assert decoded == window.features["c"].tolist()
        assert "x" not in window.coded
    assert windows[-1].coded["c"].counts() == {"DE": 20 + 30, "FR": 20, "US": 30}
