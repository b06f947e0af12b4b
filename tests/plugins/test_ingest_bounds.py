"""Bounds on client-chosen names: a flood of models, versions, classes, features or groups
folds into `_other` or is refused, counted, and leaves what was there before intact."""

from __future__ import annotations

import numpy as np
import pytest

from agent.model import Label, Sample
from plugins.ingest.bounds import OTHER, TOO_MANY_MODELS, Limits
from plugins.ingest.config import IngestConfig
from plugins.ingest.models import MAX_STRATA, Budget, ModelConfig
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.tally import Tally
from plugins.ingest.windows import WindowStage

T0 = 1_800_000_000.0


def _pipeline(limits: Limits, models: dict[str, ModelConfig] | None = None,
              **stage: object) -> tuple[Pipeline, WindowStage, list[Sample | Label]]:
    windows = WindowStage(models or {}, ["1000n"], label_wait=0, limits=limits,
                          **stage)  # type: ignore[arg-type]
    joined: list[Sample | Label] = []
    return Pipeline(models or {}, windows, joined.extend), windows, joined


def test_models_beyond_the_bound_are_refused_and_counted_with_their_labels() -> None:
    pipeline, stage, _ = _pipeline(Limits(max_models=3))
    tally = Tally(3)
    tally.pipeline = pipeline
    refused = tally.accept([Sample(model=f"m{i}", request_id="r", prediction=1)
                            for i in range(10)])
    assert sorted(refused.values()) == [TOO_MANY_MODELS] * 7
    assert sorted(m for m, _ in stage.streams) == ["m0", "m1", "m2"]
    assert tally.rejected[(OTHER, TOO_MANY_MODELS)] == 7
    labels = [Label(model=f"m{i}", request_id="r", label=1) for i in (0, 5)]
    assert tally.accept(list(labels)) == {1: TOO_MANY_MODELS}  # a label takes no slot


def test_a_label_for_a_new_model_waits_while_there_is_room() -> None:
    pipeline, stage, joined = _pipeline(Limits(max_models=2))
    assert pipeline.offer_many([Label(model="later", request_id="r", label=1)], T0) == {}
    assert not stage.admission.models.names  # no slot taken
    assert joined == [Label(model="later", request_id="r", label=1)]


def test_labels_for_models_not_seen_yet_leave_their_series_names_to_models() -> None:
    pipeline, _, _ = _pipeline(Limits(max_models=2))
    tally = Tally(2)
    tally.pipeline = pipeline
    tally.accept([Label(model=f"x{i}", request_id="r", label=1) for i in range(5)])
    tally.accept([Sample(model=m, request_id="r", prediction=1) for m in ("a", "b")])
    assert dict(tally.received) == {"a": 1, "b": 1}
    assert dict(tally.labels) == {"x0": 1, "x1": 1, "_other": 3}


def test_declared_models_always_have_their_slot() -> None:
    models = {name: ModelConfig() for name in ("a", "b", "c")}
    pipeline, stage, _ = _pipeline(Limits(max_models=1), models)
    records = [Sample(model=n, request_id="r", prediction=1) for n in ("a", "b", "c")]
    assert pipeline.offer_many(records, T0) == {}
    assert len(stage.streams) == 3


def test_versions_beyond_the_bound_fold_into_other() -> None:
    pipeline, stage, joined = _pipeline(Limits(max_versions=2))
    samples = [Sample(model="m", model_version=f"v{i}", request_id=f"r{i}", prediction=1)
               for i in range(10)]
    pipeline.offer_many(samples, T0)
    assert sorted(stage.streams) == [("m", "_other"), ("m", "v0"), ("m", "v1")]
    assert stage.streams[("m", "_other")].count == 8
    assert stage.folded()["model_version"] == 8
    assert {s.model_version for s in joined if isinstance(s, Sample)} == {"v0", "v1", OTHER}


def test_a_declared_model_s_versions_are_bounded_too() -> None:
    pipeline, stage, _ = _pipeline(Limits(max_versions=3), {"fraud": ModelConfig()})
    pipeline.offer_many([Sample(model="fraud", model_version=str(v), request_id=f"r{v}",
                                prediction=1) for v in range(1000)], T0)
    assert sorted(stage.streams) == [("fraud", v) for v in ("0", "1", "2", "_other")]


def test_streams_in_all_are_bounded_besides_one_other_per_model() -> None:
    pipeline, stage, _ = _pipeline(Limits(max_streams=3, max_versions=100))
    for model in ("a", "b"):
        pipeline.offer_many([Sample(model=model, model_version=str(v), request_id=f"{v}",
                                    prediction=1) for v in range(5)], T0)
    assert sorted(stage.streams) == [("a", "0"), ("a", "1"), ("a", "2"), ("a", "_other"),
                                     ("b", "_other")]


def test_a_long_version_is_not_a_name() -> None:
    pipeline, stage, _ = _pipeline(Limits())
    pipeline.offer_many([Sample(model="m", model_version="v" * 300, request_id="r",
                                prediction=1)], T0)
    assert list(stage.streams) == [("m", OTHER)]


def _window(stage: WindowStage, samples: list[Sample], labels: dict[str, object]):
    for i, s in enumerate(samples):
        stage.add(s, T0 + i * 1e-3, T0)
    for s in samples:
        if s.request_id in labels:
            stage.label(s, Label(model=s.model, request_id=s.request_id,
                                 label=labels[s.request_id]))
    (window,) = stage.flush()
    return window


def test_free_text_predictions_fold_into_other_classes() -> None:
    """An LLM's free text: 5,000 distinct predictions, 2 labelled rows, 100 classes kept."""
    stage = WindowStage({}, ["5000n"], label_wait=0, limits=Limits(max_classes=100))
    samples = [Sample(model="llm", request_id=f"r{i}", prediction=f"answer {i}")
               for i in range(5000)]
    window = _window(stage, samples, {"r0": "answer 0", "r4999": "something else"})
    assert len(window.classes) == 101
    assert OTHER in window.classes
    other = window.classes.index(OTHER)
    assert int(np.count_nonzero(window.y_pred == other)) == 4900
    assert window.y_true[window.y_true >= 0].tolist() == [window.classes.index("answer 0"),
                                                          other]
    assert stage.folded()["class"] == 4900 + 1  # and the unseen label


def test_scores_of_folded_classes_add_up_in_other() -> None:
    stage = WindowStage({}, ["3n"], label_wait=0, limits=Limits(max_classes=2))
    scores = {"a": 0.5, "b": 0.2, "c": 0.2, "d": 0.1}
    samples = [Sample(model="m", request_id=f"r{i}", prediction="a", scores=scores)
               for i in range(3)]
    window = _window(stage, samples, {})
    assert window.classes == ("_other", "a", "b")
    assert window.scores is not None
    assert window.scores[0].tolist() == pytest.approx([0.3, 0.5, 0.2])


def test_a_multi_megabyte_prediction_is_not_a_class() -> None:
    stage = WindowStage({}, ["2n"], label_wait=0)
    window = _window(stage, [Sample(model="m", request_id="a", prediction="x" * 1_000_000),
                             Sample(model="m", request_id="b", prediction="y")], {})
    assert window.classes == ("_other", "y")


def test_feature_names_are_bounded_per_stream_and_stable_across_panes() -> None:
    stage = WindowStage({}, ["20n/10n"], label_wait=0, max_features=5)
    first = [Sample(model="m", request_id=f"a{i}", prediction=1,
                    features={f"f{i}": 1.0, "b": 2.0}) for i in range(10)]
    # The next pane brings names that sort first: the stream keeps those it already has.
    second = [Sample(model="m", request_id=f"b{i}", prediction=1,
                     features={f"a{i}": 1.0, "b": 2.0}) for i in range(10)]
    for i, s in enumerate(first + second):
        stage.add(s, T0 + i, T0 + i)
    windows = stage.flush()
    assert [sorted(w.features) for w in windows] == [["b", "f0", "f1", "f2", "f3"]] * 2
    assert windows[-1].quality["_other"]["too_many_features_ratio"] == pytest.approx(
        (6 + 10) / 20)
    assert stage.folded()["feature"] == 6 + 10


def test_group_values_are_bounded_per_stream() -> None:
    stage = WindowStage({}, ["500n"], label_wait=0, limits=Limits(max_groups=5))
    samples = [Sample(model="m", request_id=f"r{i}", prediction=1, group=f"g{i}")
               for i in range(500)]
    window = _window(stage, samples, {})
    assert window.group is not None
    assert sorted(set(window.group.tolist())) == ["_other", "g0", "g1", "g2", "g3", "g4"]
    assert stage.folded()["group"] == 495


def test_budget_strata_are_bounded() -> None:
    budget = Budget(1000.0, stratify=True)
    for i in range(10 * MAX_STRATA):
        budget.take(f"text {i}", T0)
    assert len(budget._tokens) == MAX_STRATA + 1
    assert budget._share() == pytest.approx(1000.0 / (MAX_STRATA + 1))


def test_the_limits_are_config_keys() -> None:
    config = IngestConfig(max_models=7, max_versions=3, max_streams=9, max_classes=11,
                          max_groups=13)
    assert config.limits == Limits(7, 3, 9, 11, 13)
