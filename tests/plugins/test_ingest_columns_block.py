"""The numeric block (columns._numeric_block): features converted in one call must come out
exactly as `_column` makes them one by one, data-quality counts included."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Label, Sample
from plugins.ingest import columns
from plugins.ingest.models import FeatureSpec

VALUES = st.one_of(
    st.floats(allow_nan=False), st.integers(-10**6, 10**6), st.just(10**400), st.booleans(),
    st.none(), st.sampled_from(["a", "1.5", "inf"]), st.lists(st.integers(0, 3), max_size=2),
    st.just(float("inf")), st.just(float("-inf")))
NAMES = ("a", "b", "c", "d")
SPECS = st.dictionaries(st.sampled_from(NAMES), st.one_of(
    st.builds(FeatureSpec, type=st.just("category"), required=st.booleans(),
              nullable=st.booleans()),
    st.builds(FeatureSpec, type=st.just("number"), required=st.booleans(),
              nullable=st.booleans(), min=st.one_of(st.none(), st.just(-1.0)),
              max=st.one_of(st.none(), st.just(1.0)))), max_size=2)


def rows_of(draw: Any) -> Any:
    clean = st.fixed_dictionaries({n: st.floats(-5, 5) for n in NAMES})
    messy = st.dictionaries(st.sampled_from(NAMES), VALUES)
    return st.lists(st.one_of(clean, messy) if draw else clean, min_size=1, max_size=12)


def one_by_one(rows: list[dict[str, Any]], names: list[str],
               declared: dict[str, FeatureSpec]) -> dict[str, tuple[np.ndarray, Counter[str]]]:
    return {n: columns._column([r.get(n) for r in rows], n, rows, declared.get(n))
            for n in names}


@settings(max_examples=300, deadline=None)
@given(rows=st.booleans().flatmap(rows_of), declared=SPECS)
def test_the_block_makes_what_column_makes(rows: list[dict[str, Any]],
                                           declared: dict[str, FeatureSpec]) -> None:
    names = list(NAMES)
    block = columns._numeric_block(rows, names, declared)
    expected = one_by_one(rows, names, declared)
    for name, (column, issues) in block.items():
        want, want_issues = expected[name]
        assert want.dtype == column.dtype
        np.testing.assert_array_equal(column, want)
        assert (issues or Counter()) == want_issues, name


def test_a_clean_stream_goes_through_the_block() -> None:
    rows = [{"x": float(i), "y": i, "c": "k"} for i in range(50)]
    block = columns._numeric_block(rows, ["x", "y", "c"], {})
    assert sorted(block) == ["x", "y"]
    assert block["y"][0].tolist() == [float(i) for i in range(50)]


def test_a_null_or_an_absent_value_leaves_its_column_to_column() -> None:
    rows = [{"x": 1.0, "y": 2.0, "z": 3.0}, {"x": None, "y": 2.5, "z": 1.0}]
    assert sorted(columns._numeric_block(rows, ["x", "y", "z"], {})) == ["y", "z"]
    assert columns._numeric_block([*rows, {"y": 1.0, "z": 2.0}], ["x", "y", "z"], {}) == {}


def test_an_integer_beyond_any_float_is_non_finite_not_a_crash() -> None:
    """It crashed the pane build (OverflowError in float()) before."""
    rows = [{"x": 1.0}, {"x": 10**400}, {"x": None}]
    column, issues = columns._column([r.get("x") for r in rows], "x", rows, None)
    assert np.isnan(column[1])
    assert column[0] == 1.0
    assert issues == Counter(non_finite=1, null=1)


def _scores_one_by_one(samples: list[Sample], classes: list[str], positive: str,
                       limit: int) -> tuple[dict[str, np.ndarray], Counter[str]]:
    """The sample-by-sample loop `_scores` runs for `scores` maps, applied to all."""
    codes = {name: i for i, name in enumerate(classes)}
    folded: Counter[str] = Counter()
    out: dict[str, np.ndarray] = {}
    for i, sample in enumerate(samples):
        given = sample.scores
        if given is None and sample.score is not None:
            given = {positive: sample.score}
        for name, value in (given or {}).items():
            name = classes[columns.code(codes, classes, name, limit, folded)]  # noqa: PLW2901
            column = out.setdefault(name, np.full(len(samples), np.nan))
            column[i] = value if np.isnan(column[i]) else column[i] + value
    return out, folded


@given(scores=st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=20),
       known=st.lists(st.sampled_from(["0", "1", "x"]), unique=True, max_size=3),
       positive=st.sampled_from(["1", "x", "yes"]), limit=st.integers(1, 3))
def test_binary_scores_make_what_the_loop_makes(scores: list[float | None], known: list[str],
                                                positive: str, limit: int) -> None:
    samples = [Sample(model="m", request_id=f"r{i}", prediction=1, score=v)
               for i, v in enumerate(scores)]
    classes, folded = list(known), Counter[str]()
    found = columns._scores(samples, classes, {c: i for i, c in enumerate(classes)},
                            positive, limit=limit, folded=folded)
    want_classes = list(known)
    want, want_folded = _scores_one_by_one(samples, want_classes, positive, limit)
    assert classes == want_classes
    assert folded == want_folded
    assert found.keys() == want.keys()
    for name, column in want.items():
        np.testing.assert_array_equal(found[name], column)


def test_a_regression_value_beyond_any_float_is_no_number_not_a_crash() -> None:
    """A 400-digit prediction or label crashed the pane build and the label join."""
    from plugins.ingest.windows import WindowStage  # noqa: PLC0415

    assert np.isnan(columns.to_number(10**400))
    stage = WindowStage({}, ["10n"], label_wait=0)
    for i in range(10):
        stage.add(Sample(model="m", request_id=f"r{i}",
                         prediction=10**400 if i == 3 else 1.5 + i), float(i), float(i))
        stage.label(Sample(model="m", request_id=f"r{i}", prediction=0.5),
                    Label(model="m", request_id=f"r{i}", label=10**400 if i == 5 else 2.5))
    (window,) = stage.flush()
    assert window.task == "regression"
    assert np.isnan(window.y_pred[3])
    assert np.isnan(window.y_true[5])
    assert window.y_true[4] == 2.5
