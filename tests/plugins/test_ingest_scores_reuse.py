"""A window's final pass takes the arrays its first pass made (scores, features, codes,
predictions), only while they are what it would build: the same panes and the same classes (a
label may add a class). Only the labels are read again."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Label, Sample
from agent.window import Window
from plugins.ingest.assemble import _score_matrix
from plugins.ingest.columns import Columns
from plugins.ingest.windows import WindowStage

T0 = 1_800_000_000.0  # on the hour


def sample(i: int) -> Sample:
    return Sample(model="m", request_id=f"r{i}", prediction=i % 2, score=(i % 10) / 10,
                  features={"x": float(i)})


def passes(spec: str, new_class: bool) -> tuple[Window, Window, WindowStage]:
    stage = WindowStage({}, [spec], label_wait=600)
    samples = [sample(i) for i in range(120)]
    firsts = []
    for i, s in enumerate(samples):
        firsts += stage.advance(T0 + i)
        stage.add(s, T0 + i, T0 + i)
    firsts += stage.advance(T0 + 120)
    for s in samples[60:]:
        label = "7" if new_class and s.request_id == "r100" else 1
        stage.label(s, Label(model="m", request_id=s.request_id, label=label))
    finals = stage.advance(T0 + 720)
    first = next(w for w in firsts if w.end == T0 + 120)
    final = next(w for w in finals if w.end == T0 + 120)
    return first, final, stage


def fresh(spec: str) -> np.ndarray | None:
    """The same window's matrix built in one pass (no label wait), from scratch."""
    stage = WindowStage({}, [spec], label_wait=0)
    windows = []
    for i in range(120):
        windows += stage.advance(T0 + i)
        stage.add(sample(i), T0 + i, T0 + i)
    windows += stage.advance(T0 + 120)
    return next(w for w in windows if w.end == T0 + 120).scores


@pytest.mark.parametrize("spec", ["1m", "2m/1m"])
def test_the_final_pass_reuses_the_first_pass_scores(spec: str) -> None:
    first, final, stage = passes(spec, new_class=False)
    assert not first.final
    assert final.final
    assert final.scores is first.scores  # made once
    assert final.scores is not None
    assert not final.scores.flags.writeable
    assert np.array_equal(final.scores, fresh(spec), equal_nan=True)
    assert int(final.labeled.sum()) > int(first.labeled.sum())  # labels did change
    assert all(p.first_made is None for s in stage.streams.values()
               for closed in s.closed.values() for p in closed if p.finalized)


@pytest.mark.parametrize("spec", ["1m", "2m/1m"])
def test_a_class_added_between_the_passes_rebuilds_the_scores(spec: str) -> None:
    first, final, _ = passes(spec, new_class=True)
    assert "7" in final.classes
    assert "7" not in first.classes
    assert final.scores is not first.scores
    assert final.scores is not None
    assert final.scores.shape == (final.rows, len(final.classes))
    assert np.isnan(final.scores[:, final.classes.index("7")]).all()  # no score for it


def fresh_window(spec: str, labelled: range) -> Window:
    """The same window built in one pass with the labels of `labelled` already joined."""
    stage = WindowStage({}, [spec], label_wait=0)
    windows = []
    for i in range(120):
        windows += stage.advance(T0 + i)
        stage.add(sample(i), T0 + i, T0 + i)
        if i in labelled:
            stage.label(sample(i), Label(model="m", request_id=f"r{i}", label=1))
    windows += stage.advance(T0 + 120)
    return next(w for w in windows if w.end == T0 + 120)


@pytest.mark.parametrize("spec", ["1m", "2m/1m"])
def test_the_final_pass_is_the_window_built_from_scratch(spec: str) -> None:
    first, final, _ = passes(spec, new_class=False)
    want = fresh_window(spec, range(60, 120))
    # A tumbling window's arrays are taken, not rebuilt; a sliding one's are joined again
    # (keeping them for the label wait would cost a window's memory per step).
    assert (final.features["x"] is first.features["x"]) == (spec == "1m")
    assert final.features is not first.features  # the dicts are the final pass's own
    assert final.results == {}
    assert final.y_true is not first.y_true
    for name in ("model", "spec", "start", "end", "task", "n", "classes", "positive",
                 "quality", "final", "provisional"):
        assert getattr(final, name) == getattr(want, name), name
    for name in ("y_pred", "y_true", "scores"):
        assert np.array_equal(getattr(final, name), getattr(want, name), equal_nan=True), name
    assert final.features.keys() == want.features.keys()
    for name, column in want.features.items():
        assert np.array_equal(final.features[name], column, equal_nan=True)


def test_what_a_monitor_adds_in_the_first_pass_stays_out_of_the_final() -> None:
    stage = WindowStage({}, ["1m"], label_wait=600)
    firsts = []
    for i in range(70):
        firsts += stage.advance(T0 + i)
        stage.add(sample(i), T0 + i, T0 + i)
    firsts += stage.advance(T0 + 60)
    first = next(w for w in firsts if w.end == T0 + 60)
    first.features["derived"] = first.features["x"] * 2  # a careless monitor
    first.quality.setdefault("x", {})["odd_ratio"] = 1.0
    final = next(w for w in stage.advance(T0 + 700) if w.end == T0 + 60)
    assert "derived" not in final.features
    assert "odd_ratio" not in final.quality.get("x", {})


def test_a_sliding_window_keeps_only_its_scores_for_the_label_wait() -> None:
    stage = WindowStage({}, ["2m/1m"], label_wait=600)
    for i in range(120):
        stage.advance(T0 + i)
        stage.add(sample(i), T0 + i, T0 + i)
    stage.advance(T0 + 120)
    waiting = [p.first_made for s in stage.streams.values() for closed in s.closed.values()
               for p in closed if p.first_made is not None]
    joined = [made for made in waiting if len(made.parts) > 1]
    assert joined  # windows of two panes
    assert all(made.window is None and made.matrix is not None for made in joined)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.none() | st.floats(0.0, 1.0), min_size=1, max_size=40),
       cut=st.integers(0, 40), name=st.sampled_from(["1", "0", "_other", "x"]),
       order=st.sampled_from([("0", "1"), ("1", "0"), ("0", "_other"), ("_other", "1")]))
def test_one_panes_binary_score_matrix_is_the_matrix_of_its_halves(
        values: list[float | None], cut: int, name: str, order: tuple[str, str]) -> None:
    """The one-pane binary fast path against the general one (two panes, the same rows)."""
    scores = np.array([math.nan if v is None else v for v in values])
    position = {c: i for i, c in enumerate(order)}
    cut = min(cut, len(values))

    def part(rows: slice) -> Columns:
        chunk = scores[rows]
        return Columns([], np.zeros(len(chunk)), np.zeros(len(chunk), np.int64),
                       np.full(len(chunk), -1, np.int64), {name: chunk}, {}, None)

    whole = _score_matrix([part(slice(None))], position, len(values))
    halves = _score_matrix([part(slice(0, cut)), part(slice(cut, None))], position,
                           len(values))
    assert whole is not None
    assert halves is not None
    np.testing.assert_array_equal(whole, halves)
    assert whole.tobytes() == halves.tobytes()  # the bits, NaN included
