"""Drift references that a few extreme or non-finite values cannot break (#12 item 9)."""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.window import Window
from plugins.drift import statistics as ds
from plugins.drift.monitor import drift_columns
from plugins.drift.profile import (
    NumericProfile,
    Profile,
    build,
    fence_of,
    findings,
    non_finite_statistics,
    numeric_profile,
)
from tests.plugins.test_drift import frame, monitor, window

HUGE = 1.5e308
EXTREMES = [HUGE, -HUGE, 1.7976931348623157e308, -1.7976931348623157e308, 1e300, -1e300,
            math.inf, -math.inf, 5e15, -5e15]


def _shifted_window_drifts(profile: Profile, tmp_path: Path, feature: str = "x0") -> bool:
    mon = monitor(tmp_path, profile)
    rng = np.random.default_rng(11)
    found = mon.compute(window(frame(rng, 5000, shift=0.5)))
    assert found is not None
    return bool(found["features"][feature]["drifted"])


def test_one_huge_value_in_the_reference_changes_nothing_that_matters(tmp_path: Path) -> None:
    """Before: sigma = inf, every later shift scored 0, and the file saved with null."""
    rng = np.random.default_rng(10)
    columns = frame(rng, 10_000)
    columns["x0"][1234] = HUGE
    profile = build(columns, model="m", model_version="1")
    x0 = profile.numeric["x0"]
    assert x0.std == pytest.approx(1.0, abs=0.05)
    assert x0.mean == pytest.approx(0.0, abs=0.05)
    assert x0.extreme == 1
    assert x0.edges[-1] < 50, "the last edge stops at the fence"
    assert findings(profile) == {"x0": {"extreme": 1}}
    assert profile.corr[0][1] == pytest.approx(0.0, abs=0.05)
    path = tmp_path / "ref.json"
    profile.save(path)
    assert Profile.load(path) == profile
    assert _shifted_window_drifts(profile, tmp_path)


async def test_a_captured_reference_with_a_huge_value_survives_a_restart(tmp_path: Path
                                                                         ) -> None:
    """Before: the saved profile held null, failed to load, and was captured again (from
    rows that may already have drifted) after every restart."""
    rng = np.random.default_rng(12)
    first = frame(rng, 2500)
    first["x0"][7] = HUGE
    first["x1"][8] = math.inf
    mon = monitor(tmp_path, reference_samples=2000)
    await mon.process(window(first))
    saved = list((tmp_path / "plugins" / "drift").glob("reference*"))
    assert len(saved) == 1
    loaded = Profile.load(saved[0])
    assert loaded.numeric["x0"].extreme == 1
    assert loaded.numeric["x1"].non_finite == 1
    again = monitor(tmp_path, reference_samples=2000)  # after a restart
    second = window(frame(rng, 2500, shift=0.5), 3600.0)
    await again.process(second)
    assert second.results["drift"]["reference_samples"] == 2500, "loaded, not re-captured"
    assert second.results["drift"]["features"]["x0"]["drifted"]


def test_a_profile_with_non_finite_statistics_is_never_written(tmp_path: Path) -> None:
    bad = Profile(model="m", numeric={"x": NumericProfile(
        count=3, mean=0.0, std=math.inf, edges=[0.0] * 101, probs=[0.01] * 100)})
    assert non_finite_statistics(bad) == ["x"]
    with pytest.raises(ValueError, match="non-finite statistics in x"):
        bad.save(tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert not (tmp_path / "bad.tmp").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(200, 3000),
       centre=st.floats(-1e6, 1e6), sigma=st.floats(1e-3, 1e6),
       injected=st.lists(st.one_of(st.sampled_from([*EXTREMES, math.nan]),
                                   st.floats(min_value=1e13), st.floats(max_value=-1e13)),
                         min_size=1, max_size=5))
def test_a_few_extreme_values_move_neither_sigma_nor_mean(
        seed: int, n: int, centre: float, sigma: float, injected: list[float]) -> None:
    """Up to five values far from the rest (>= 1e7 sigma: the float limits, +-inf, any
    float that far; NaN is missing) among normal values: the statistics stay those of the
    normal values, and every extreme one is counted."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(centre, sigma, n)
    values = clean.copy()
    at = rng.choice(n, len(injected), replace=False)
    values[at] = injected
    found = numeric_profile(values)
    assert found is not None
    kept = np.delete(clean, at)
    assert found.std == pytest.approx(kept.std(), rel=0.15)
    assert abs(found.mean - kept.mean()) < 0.15 * sigma
    far = [v for v in injected if math.isfinite(v)]
    assert found.non_finite == sum(math.isinf(v) for v in injected)
    assert found.extreme == len(far), "each far value, and no normal one"
    assert math.isfinite(found.edges[0])
    assert math.isfinite(found.edges[-1])
    assert found.edges[-1] - found.edges[0] < 100 * sigma
    assert sum(found.probs) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=60),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=60))
def test_any_floats_give_a_profile_that_saves_and_loads(tmp_path_factory: pytest.TempPathFactory,
                                                        a: list[float], b: list[float]) -> None:
    """Whatever the values (float limits, +-inf, NaN, ties, opposite signs side by side),
    the profile's statistics are finite, so it is written and reads back equal."""
    n = max(len(a), len(b))
    columns = {"a": np.array(a + [math.nan] * (n - len(a))),
               "b": np.array(b + [math.nan] * (n - len(b)))}
    profile = build(columns, model="m")
    assert non_finite_statistics(profile) == []
    for p in profile.numeric.values():
        assert p.edges == sorted(p.edges)
        assert p.std > 0
    path = tmp_path_factory.mktemp("p") / "ref.json"
    profile.save(path)
    assert Profile.load(path) == profile


@pytest.mark.parametrize("wild", [HUGE, -HUGE, math.inf])
def test_one_extreme_value_in_a_window_is_not_drift(tmp_path: Path, wild: float) -> None:
    """The same class on the window side: one 1.5e308 overflowed the correlation sums (the
    check then read a correlation of 0 against the reference's 0.6: drift) and was a CUSUM
    alarm on its own."""
    rng = np.random.default_rng(13)
    reference = build(drift_columns(window(frame(rng, 20_000, corr=0.6))), model="m",
                      model_version="1")
    mon = monitor(tmp_path, reference)
    columns = frame(rng, 5000, corr=0.6)
    columns["x1"][100] = columns["x2"][100] = wild  # two in a row: the row sum overflows
    columns["x3"][200] = -wild
    found = mon.compute(window(columns))
    assert found is not None
    assert found["multivariate"]["n"] == 4998, "the rows with extreme values left out"
    assert found["multivariate"]["score"] < 0.05, "no correlation moved (x1-x2 stays 0.6)"
    assert not found["drifted"]
    assert found["sequential"]["x1"]["alarms"] == 0
    assert found["sequential"]["x3"]["alarms"] == 0
    prepared = ds.Prepared(reference)  # the column-by-column path agrees
    by_columns = ds.correlation_check(prepared, columns, ds.Rule(), 3.0)
    assert by_columns is not None
    assert by_columns["n"] == 4998
    assert by_columns["score"] == pytest.approx(found["multivariate"]["score"], abs=1e-9)


def test_a_profile_saved_before_the_fence_loads_and_derives_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    profile = build({"x": rng.normal(size=5000)}, model="m")
    body = msgspec.to_builtins(profile)
    for field in ("extreme", "non_finite", "fence"):
        del body["numeric"]["x"][field]
    path = tmp_path / "old.json"
    path.write_bytes(msgspec.json.encode(body))
    old = Profile.load(path).numeric["x"]
    assert old.fence == []
    low, high = fence_of(old)
    assert low == pytest.approx(profile.numeric["x"].fence[0], rel=1e-6)
    assert high == pytest.approx(profile.numeric["x"].fence[1], rel=1e-6)


def _floats(found: object) -> list[float]:
    if isinstance(found, dict):
        return [f for v in found.values() for f in _floats(v)]
    if isinstance(found, list | tuple):
        return [f for v in found for f in _floats(v)]
    return [found] if isinstance(found, float) else []


@functools.cache
def correlated() -> Profile:
    rng = np.random.default_rng(15)
    return build(drift_columns(window(frame(rng, 20_000, corr=0.6))), model="m",
                 model_version="1")


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(50, 3000),
       injected=st.lists(st.tuples(st.integers(0, 19), st.integers(0, 10**6),
                                   st.one_of(st.sampled_from(EXTREMES),
                                             st.floats(allow_nan=True, allow_infinity=True))),
                         max_size=8))
def test_any_values_in_a_window_give_finite_results(
        tmp_path: Path, seed: int, rows: int,
        injected: list[tuple[int, int, float]]) -> None:
    """Whatever a window's numeric values (the float limits, +-inf, NaN, anything, in any
    column and row), the check completes with finite statistics, and a few of them do not
    make a stable window drift."""
    rng = np.random.default_rng(seed)
    columns = frame(rng, rows, corr=0.6)
    tame = {name: column.copy() for name, column in columns.items()}
    for column, row, value in injected:
        columns[f"x{column}"][row % rows] = value
        if math.isfinite(value) and abs(value) <= 1e3:
            tame[f"x{column}"][row % rows] = value
    found = monitor(tmp_path, correlated()).compute(window(columns))
    assert found is not None
    assert all(math.isfinite(v) for v in _floats(found))
    assert msgspec.json.encode(found)
    wild = sum(not math.isfinite(v) or abs(v) > 1e3 for _, _, v in injected)
    if rows >= 1000 and wild <= 3:
        # Against the same window without its extreme values: a stable window may raise a
        # false alarm now and then (the checks' 1% per window; a 25-sigma value moves a
        # Pearson correlation), the extreme values must not add one. A stream's own extreme
        # value counts once, clipped at the fence (~35 sigma of h ~85): on a CUSUM already
        # near h that is an alarm by design, so only the other streams are held to it.
        base = monitor(tmp_path, correlated()).compute(window(tame))
        assert base is not None
        if not base["multivariate"].get("drifted"):
            assert not found["multivariate"].get("drifted")
        hit = {f"x{c}" for c, _, v in injected if not math.isfinite(v) or abs(v) > 1e3}
        calm = {n for n, s in base["sequential"].items() if not s["alarms"] and n not in hit}
        assert not any(found["sequential"][n]["alarms"] for n in calm)


def test_rows_without_scores_raise_no_numpy_warning() -> None:
    """A multiclass model that sent scores for some rows only: no 'All-NaN slice' warning on
    stderr (outside the JSON logs), and those rows' score is NaN."""
    scores = np.array([[0.2, 0.5, 0.3], [np.nan, np.nan, np.nan]])
    win = Window(model="m", model_version="1", spec="1h", start=0.0, end=3600.0,
                 task="classification", n=2, y_pred=np.array([1, 0]), y_true=np.array([-1, -1]),
                 classes=("a", "b", "c"), scores=scores)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        columns = drift_columns(win)
    assert columns["__score"][0] == 0.5
    assert np.isnan(columns["__score"][1])
    assert columns["__prediction"].tolist() == ["b", "a"]
