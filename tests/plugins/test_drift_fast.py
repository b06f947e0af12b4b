"""The drift monitor's per-window path, reworked for small windows (#12 item 7), gives what
it gave before bit for bit: the same floats, the same keys in the same order, the same CUSUM
states. tests/plugins/drift_frozen.py holds the previous implementation; both run on the
same monitor state, over windows of 0 to 20,000 rows with NaN, infinities, values past the
fences, categories the reference never had, missing features and drifting data."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.plain import is_plain
from agent.window import Coded, Window
from plugins.drift.extra import Extra
from plugins.drift.monitor import DriftMonitor, drift_columns
from plugins.drift.profile import BINS, NumericProfile, Profile, build
from plugins.drift.sequential import Cusum, Cusums
from plugins.drift.statistics import Prepared, scan
from tests.bits import same
from tests.plugins import drift_frozen
from tests.plugins.test_drift import monitor

LEVELS = np.array(["a", "b", "c", "d", "e", "f", "g"], dtype=object)
ROWS = [0, 1, 2, 3, 4, 5, 17, 100, 257, 4097]


def columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Numeric features of several shapes (one of few values: its bins tie), categorical
    ones with and without a long tail."""
    cols = {
        "gauss": rng.normal(shift, 1, n),
        "uniform": rng.random(n) + shift,
        "heavy": rng.standard_cauchy(n),
        "skewed": rng.lognormal(shift, 2, n),
        "few": rng.integers(0, 4, n).astype(np.float64),
        "corr": np.zeros(n),
        "colour": LEVELS[rng.choice(5, n, p=[0.4, 0.3, 0.15, 0.1, 0.05])],
        "tail": np.array([f"t{i}" for i in rng.integers(0, 80, n)], dtype=object),
    }
    cols["corr"] = cols["gauss"] * 0.8 + rng.normal(0, 0.6, n)
    return cols


def classified(features: dict[str, np.ndarray], rng: np.random.Generator, start: float,
               spec: str = "100n") -> Window:
    n = len(next(iter(features.values())))
    score = rng.random(n)
    scores = np.column_stack([1 - score, score])
    scores[rng.random(n) < 0.05] = np.nan
    y_pred = np.where(np.isnan(scores[:, 1]), -1, (score > 0.5).astype(np.intp))
    coded = {name: Coded.of(column) for name, column in features.items()
             if column.dtype == object}
    return Window(model="m", model_version="1", spec=spec, start=start, end=start + 1,
                  task="classification", n=n, y_pred=y_pred, y_true=np.full(n, -1),
                  classes=("no", "yes"), positive=1, scores=scores, features=features,
                  coded=coded, final=False)


@pytest.fixture(scope="module")
def profile() -> Profile:
    rng = np.random.default_rng(5)
    return build(drift_columns(classified(columns(rng, 20_000), rng, 0.0)), model="m",
                 model_version="1")


def spoiled(rng: np.random.Generator, cols: dict[str, np.ndarray], gaps: float,
            wild: bool, unseen: bool, drop: list[str]) -> dict[str, np.ndarray]:
    """NaN, +-inf, values near the float limit, levels the reference never saw, None,
    and features missing altogether."""
    n = len(cols["colour"])
    for column in cols.values():
        if column.dtype == object:
            column[rng.random(n) < gaps] = None
            if unseen:
                column[rng.random(n) < 0.2] = "never"
        else:
            column[rng.random(n) < gaps] = np.nan
    if wild and n:
        for name, value in (("gauss", np.inf), ("uniform", -np.inf), ("corr", 1.5e308),
                            ("skewed", -1e300), ("few", 1e15)):
            cols[name][rng.integers(0, n)] = value
    for name in drop:
        del cols[name]
    return cols


def compare(mon: DriftMonitor, window: Window) -> None:
    """The reworked evaluate against the frozen one from the same state, then commit."""
    mon.read_until.clear()
    old = drift_frozen.evaluate(mon, window)
    mon.read_until.clear()
    new = mon.evaluate(window)
    assert is_plain(new.results)
    same(new.results, old.results)
    ident = (window.model, window.model_version)
    kept = mon.cusums.get(ident, {})
    if new.cusums is None:
        assert not old.cusums
    else:  # the window's detectors advanced, the stream's others as they were, in order
        assert list(new.cusums) == list(dict.fromkeys([*kept, *old.cusums]))
        assert ({k: dataclasses.astuple(new.cusums[k]) for k in old.cusums}
                == {k: dataclasses.astuple(c) for k, c in old.cusums.items()})
        assert ({k: dataclasses.astuple(c) for k, c in new.cusums.items() if k not in old.cusums}
                == {k: dataclasses.astuple(kept[k]) for k in kept if k not in old.cusums})
    assert new.errors == old.errors
    mon.commit(new)


NAMES = ["gauss", "uniform", "heavy", "skewed", "few", "corr", "tail"]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.lists(st.sampled_from(ROWS), min_size=1, max_size=4),
       st.sampled_from([0.0, 0.0, 0.01, 0.3, 1.0]), st.booleans(), st.booleans(),
       st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
       st.sampled_from([0.0, 0.0, 0.3, 3.0]))
def test_the_reworked_window_path_gives_the_same_results_bit_for_bit(
        tmp_path: Path, profile: Profile, seed: int, sizes: list[int], gaps: float,
        wild: bool, unseen: bool, drop: list[str], shift: float) -> None:
    rng = np.random.default_rng(seed)
    mon = monitor(tmp_path, profile)
    for i, n in enumerate(sizes * 2):  # each size twice: the second looks its terms up
        cols = spoiled(rng, columns(rng, n, shift), gaps, wild, unseen, drop)
        compare(mon, classified(cols, rng, float(i)))


DISTRIBUTIONS = ("uniform", "normal", "lognormal", "exponential", "integers", "mixed")


def draw(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    scale = float(rng.choice([1e-6, 1.0, 1e6]))
    found = {"uniform": lambda: rng.random(n), "normal": lambda: rng.normal(0, 1, n),
             "lognormal": lambda: rng.lognormal(0, 2, n),
             "exponential": lambda: rng.exponential(1, n),
             "integers": lambda: rng.integers(0, 30, n).astype(np.float64),
             "mixed": lambda: np.where(rng.random(n) < 0.5, rng.normal(0, 1, n),
                                       rng.normal(50, 0.01, n))}[kind]()
    return np.asarray(found * scale)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.sampled_from(DISTRIBUTIONS), min_size=1,
                                           max_size=12), st.sampled_from([0, 1, 7, 100, 5000]))
def test_the_scan_bins_every_value_as_searchsorted_does(seed: int, kinds: list[str],
                                                         n: int) -> None:
    """Each value's bin is searchsorted(inner edges, value, "right") exactly, whatever the
    lookup's cells (as coarse as one edge per cell allows): values on the edges, between
    them, past either end (clipped into the first or last cell), at the float limit, NaN."""
    rng = np.random.default_rng(seed)
    columns = {f"x{i}": draw(rng, kind, 4000) for i, kind in enumerate(kinds)}
    prepared = Prepared(build(columns, model="m"))
    names = tuple(prepared.numeric)
    values = []
    for name in names:
        inner = prepared.numeric[name].inner
        span = float(inner[-1] - inner[0]) or 1.0
        pool = np.r_[inner, np.nextafter(inner, np.inf), np.nextafter(inner, -np.inf),
                     inner[0] - span * rng.random(20), inner[-1] + span * rng.random(20),
                     rng.uniform(inner[0], inner[-1], 50), np.nan, np.inf, -np.inf,
                     1.7e308, -1.7e308]
        values.append(rng.choice(pool, n))
    batch = prepared.batch(names)
    if not batch.tabled:
        return
    found = scan(batch, values)
    for i, name in enumerate(names):
        kept = values[i][~np.isnan(values[i])]
        expected = np.bincount(np.searchsorted(prepared.numeric[name].inner, kept,
                                               side="right"), minlength=BINS)
        assert found.counts[i].tolist() == expected.tolist(), name
        assert found.n[i] == len(kept)


def test_values_past_the_last_edge_on_many_references() -> None:
    """Values above the last edge are clipped into the lookup's last cell, which may hold
    the edge before it too; rounding can put the last edge past the grid's end (about one
    reference in four here). A coarse lookup that missed that binned such values one bin
    low for ~1.5% of uniform references: 400 of them, every one exact."""
    rng = np.random.default_rng(13)
    prepared = Prepared(build({f"x{i}": rng.random(2000) for i in range(400)}, model="m"))
    names = tuple(prepared.numeric)
    inner = [prepared.numeric[name].inner for name in names]
    values = [np.r_[edges[-1], np.nextafter(edges[-1], 2.0), edges[-1] + 1e-3, 5.0,
                    edges[0], np.nextafter(edges[0], -1.0), -5.0] for edges in inner]
    found = scan(prepared.batch(names), values)
    for i, edges in enumerate(inner):
        expected = np.bincount(np.searchsorted(edges, values[i], side="right"),
                               minlength=BINS)
        assert found.counts[i].tolist() == expected.tolist(), names[i]


def test_cusum_alarms_and_a_window_longer_than_a_chunk(tmp_path: Path, profile: Profile
                                                       ) -> None:
    """A shift large enough to raise alarms mid-window, then a 20,000-row window (the
    CUSUM's per-detector path) and one of 4,097 (two scan blocks)."""
    rng = np.random.default_rng(8)
    mon = monitor(tmp_path, profile)
    for i, (n, shift) in enumerate([(300, 0.0), (300, 4.0), (300, 4.0), (20_000, 1.0),
                                    (4_097, 0.0)]):
        compare(mon, classified(columns(rng, n, shift), rng, float(i)))
    assert any(c.alarms for c in mon.cusums[("m", "1")].values())


def test_other_statistics_and_a_regression_model(tmp_path: Path, profile: Profile) -> None:
    """Statistics other plugins add keep their place among the keys; a regression window
    has its prediction as a numeric column (no score); a statistic that fails is counted."""

    def fails(values: np.ndarray, reference: NumericProfile) -> float:
        if len(values) > 50:
            raise ValueError("no")
        return float(np.nanmean(values)) - reference.mean if len(values) else 0.0

    mon = monitor(tmp_path, profile)
    mon.extra = Extra({"mean_shift": fails})
    rng = np.random.default_rng(9)
    for i, n in enumerate([3, 100, 0, 40]):
        cols = columns(rng, n)
        regression = Window(model="m", model_version="1", spec="100n", start=float(i),
                            end=i + 1.0, task="regression", n=n, y_pred=rng.normal(0, 1, n),
                            y_true=np.full(n, np.nan), features=cols, final=False)
        compare(mon, regression)


def test_a_profile_loaded_from_disk_and_constant_features(tmp_path: Path) -> None:
    """A feature constant in the reference (sigma 0: inf and NaN effects), and one constant
    in the window: the corner cases of the arithmetic, alike in both."""
    rng = np.random.default_rng(12)
    cols = columns(rng, 3_000)
    cols["flat"] = np.ones(3_000)
    reference = build(drift_columns(classified(cols, rng, 0.0)), model="m", model_version="1")
    path = tmp_path / "ref.json"
    reference.save(path)
    mon = monitor(tmp_path, Profile.load(path))
    for i, n in enumerate([100, 100, 7]):
        window_cols = columns(rng, n)
        window_cols["flat"] = np.full(n, 1.0 + i)
        window_cols["gauss"] = np.full(n, math.pi)
        compare(mon, classified(window_cols, rng, float(i)))


def test_the_lookup_tables_of_every_reference_share_one_budget() -> None:
    """Per feature they grew with features, sizes and references: 200 categorical features
    held 146 MiB. Now the process keeps at most the budget, oldest out first."""
    from plugins.drift.tables import MIN_ENTRY, Tables  # noqa: PLC0415

    tables = Tables(budget=4 * MIN_ENTRY)
    owners = [object() for _ in range(50)]
    for i, owner in enumerate(owners):
        for rows in range(3):
            tables.put(owner, ("terms", rows), np.zeros(1000), 8000 + i)
    assert tables.used <= 4 * MIN_ENTRY
    assert len(tables) == 4
    assert tables.get(owners[-1], ("terms", 2)) is not None  # the newest stay
    assert tables.get(owners[0], ("terms", 0)) is None
    assert tables.get(object(), ("terms", 2)) is None
    tables.put(owners[0], "huge", np.zeros(1), 5 * MIN_ENTRY)  # beyond the budget: not kept
    assert tables.get(owners[0], "huge") is None


# -- the CUSUM state as arrays (sequential.Cusums) ------------------------------------------

@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7,
                                   unique=True),
                          st.sampled_from([0, 1, 2, 5, 60, 300]),
                          st.sampled_from([0.0, 0.0, 0.5, 3.0]),
                          st.sampled_from([0.0, 0.0, 0.1, 1.0])), min_size=1, max_size=12))
def test_cusums_advance_as_one_detector_per_name_would(
        seed: int, windows: list[tuple[list[str], int, float, float]]) -> None:
    """Windows whose streams come and go (new ones start from zero, absent ones keep their
    state and their place), empty windows, left-out values, shifts that raise alarms: each
    name's detector is where Cusum.update on its valid values takes it, the statistic is
    max(up, down) / h and the alarms are counted per window and in all; a copy never
    changes the one it came from."""
    rng = np.random.default_rng(seed)
    k, h = 0.055, 8.0
    expected: dict[str, Cusum] = {}
    found = Cusums(k, h)
    for names, n, shift, gaps in windows:
        z = rng.normal(shift, 1, (len(names), n))
        z[rng.random(z.shape) < 0.02] = np.inf if shift else -np.inf
        valid = np.isfinite(z) & (rng.random(z.shape) >= gaps)
        before = {name: dataclasses.astuple(found[name]) for name in found}
        new, statistic, fired, total = found.advanced(
            tuple(names), z, None if valid.all() else valid)
        assert {name: dataclasses.astuple(found[name]) for name in found} == before
        for i, name in enumerate(names):
            detector = expected.setdefault(name, Cusum(k, h))
            alarms = detector.alarms
            detector.update(z[i][valid[i]])
            same(statistic[i], max(detector.up, detector.down) / h)
            assert (fired[i], total[i]) == (detector.alarms - alarms, detector.alarms)
        assert list(new) == list(expected)  # in the order the names first came
        assert {name: dataclasses.astuple(new[name]) for name in new} == {
            name: dataclasses.astuple(c) for name, c in expected.items()}
        found = new


def sliding(rng: np.random.Generator, start: float, n: int, shift: float, gaps: float,
            drop: list[str]) -> Window:
    """A window of a sliding spec: it starts before the previous one ended."""
    cols = spoiled(rng, columns(rng, n, shift), gaps, wild=True, unseen=False, drop=drop)
    return classified(cols, rng, start, spec="500n/100n")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.sampled_from([0, 3, 100, 257]), st.sampled_from([0.0, 4.0]),
                          st.sampled_from([0.0, 0.05]),
                          st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
                          st.sampled_from([0.5, 1.0, 2.0])), min_size=2, max_size=10))
def test_many_windows_with_features_that_come_and_go_and_sliding_windows(
        tmp_path: Path, profile: Profile, seed: int,
        windows: list[tuple[int, float, float, list[str], float]]) -> None:
    """The CUSUM state carried across many windows, each leaving out other features, some
    overlapping the rows read before (a sliding spec: no CUSUM step then), NaN, infinities
    and values past the fences, drifts that raise alarms: the same results and detectors
    as the frozen path, window after window, from the same state."""
    rng = np.random.default_rng(seed)
    mon = monitor(tmp_path, profile)
    start = 0.0
    for n, shift, gaps, drop, step in windows:
        window = sliding(rng, start, n, shift, gaps, drop)
        window.end = start + 1.0
        old = drift_frozen.evaluate(mon, window)
        new = mon.evaluate(window)
        same(new.results, old.results)
        assert (new.cusums is None) == (old.cusums is None)
        if new.cusums is not None:
            for name, detector in old.cusums.items():
                assert dataclasses.astuple(new.cusums[name]) == dataclasses.astuple(detector)
        assert new.read_until == old.read_until
        mon.commit(new)
        start += step  # 0.5: overlaps the last window's rows


def test_the_thresholds_kept_across_windows_are_bounded(tmp_path: Path, profile: Profile
                                                        ) -> None:
    """Window sizes and feature counts without end (each a new z) keep at most
    RULES_KEPT x THRESHOLDS_KEPT thresholds in the process."""
    from plugins.drift import monitor as module  # noqa: PLC0415
    from plugins.drift.statistics import numeric_threshold  # noqa: PLC0415

    mon = monitor(tmp_path, profile)
    for tests in range(1, 3 * module.RULES_KEPT):
        z = 2.0 + tests / 100
        for n in range(module.THRESHOLDS_KEPT + 50):
            limits = mon._limits(z)
            limits.setdefault((n, 10_000), numeric_threshold(mon.rule, n, 10_000, z))
        assert len(module._LIMITS) <= module.RULES_KEPT
        assert all(len(kept) <= module.THRESHOLDS_KEPT + 1
                   for kept in module._LIMITS.values())
    module._LIMITS.clear()  # none of these z values is a test's: leave no trace
