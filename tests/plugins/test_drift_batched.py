"""The drift monitor's per-window work done for every feature at once gives the same numbers,
bit for bit, as the feature-by-feature computation it replaced."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.window import Window
from plugins.drift import statistics as ds
from plugins.drift.config import DriftConfig
from plugins.drift.monitor import DriftMonitor
from plugins.drift.profile import build, fence_of
from plugins.drift.sequential import CHUNK, Cusum, advance


def state(c: Cusum) -> tuple[float, float, int, int]:
    return c.up, c.down, c.alarms, c.samples


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(0, 400),
       st.floats(0.0, 0.4), st.floats(0.5, 30.0), st.booleans())
def test_advance_equals_each_detector_on_its_valid_values(seed: int, k: int, n: int,
                                                           gaps: float, h: float,
                                                           drifting: bool) -> None:
    """Random starting states, left-out values anywhere (first and last included), shifts
    that raise alarms mid-window: every detector ends exactly where Cusum.update takes it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(1.5 if drifting else 0.0, 1, (k, n))
    valid = rng.random((k, n)) >= gaps
    start = [Cusum(0.05 * (1 + i % 2), h * (1 + i % 3), float(rng.uniform(0, h)),
                   float(rng.uniform(0, h)), int(rng.integers(0, 5)),
                   int(rng.integers(0, 1000))) for i in range(k)]
    expected = []
    for i, detector in enumerate(start):
        copy = Cusum(detector.k, detector.h, detector.up, detector.down, detector.alarms,
                     detector.samples)
        copy.update(z[i][valid[i]])
        expected.append(state(copy))
    found = advance(start, z, None if valid.all() else valid)
    assert [state(c) for c in found] == expected
    assert all(f is not s for f, s in zip(found, start, strict=True))  # copies, always


def test_advance_on_a_window_longer_than_a_chunk() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0.2, 1, (2, CHUNK + 100))
    expected = []
    for row in z:
        c = Cusum(0.05, 8.0)
        c.update(row)
        expected.append(state(c))
    assert [state(c) for c in advance([Cusum(0.05, 8.0), Cusum(0.05, 8.0)], z, None)] \
        == expected


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4000), st.floats(0.0, 0.3))
def test_the_scan_correlates_the_reference_features_as_the_column_path(
        seed: int, n: int, gaps: float) -> None:
    """With the model's score beside the features (not in the correlation), the scan's sums
    cover exactly the correlated columns and rows complete in those: the same check as the
    separate column_stack pass, bit for bit within one scan block."""
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(i, 1 + i, 3000) for i in range(4)}
    reference = ds.Prepared(build({"__score": rng.random(3000), **data}, model="m"))
    names = tuple(reference.numeric)
    batch = reference.batch(names)
    assert batch.summed_names == tuple(data)
    values = [rng.normal(0, 3, n) for _ in names]
    for v in values:
        v[rng.random(n) < gaps] = np.nan
    values[1][rng.random(n) < 0.01] = np.inf
    found = ds.scan(batch, values)
    columns = dict(zip(names, values, strict=True))
    alone = ds.correlation_check(reference, columns, ds.Rule(), 3.0)
    together = ds.correlation_check(reference, columns, ds.Rule(), 3.0,
                                    (batch.summed_names, found))
    assert alone == together


def test_a_window_with_gaps_and_extremes_gets_the_per_feature_cusum(tmp_path: Path) -> None:
    """The monitor's CUSUM state after windows with NaN, inf and values past the fence:
    each feature's finite values, standardised, clipped at the fence, fed one by one."""
    rng = np.random.default_rng(4)
    ref_cols = {f"x{i}": rng.normal(0, 1 + i, 5000) for i in range(3)}
    profile = build(ref_cols, model="m", model_version="1")
    config = DriftConfig()
    ctx = PluginContext(plugin="drift", config=config, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("drift", 1000), emitter=lambda _: True)
    mon = DriftMonitor(config, ctx)
    mon.set_reference(profile)
    expected = {name: Cusum(mon.k, mon.h) for name in ref_cols}
    for i in range(4):
        cols = {f"x{j}": rng.normal(0.5 * (i > 1), 1 + j, 300) for j in range(3)}
        cols["x0"][::7] = np.nan
        cols["x1"][5] = np.inf
        cols["x2"][9] = 1e300
        n = 300
        window = Window(model="m", model_version="1", spec="1h", start=i * 3600.0,
                        end=(i + 1) * 3600.0, task="regression", n=n, y_pred=np.zeros(n),
                        y_true=np.full(n, np.nan), features=cols, final=True)
        results = mon.compute(window)
        assert results is not None
        for name, detector in expected.items():
            p = profile.numeric[name]
            values = cols[name][np.isfinite(cols[name])]
            low, high = fence_of(p)
            with np.errstate(over="ignore"):
                z = np.clip((values - p.mean) / p.std, (low - p.mean) / p.std,
                            (high - p.mean) / p.std)
            fired = detector.update(z)
            found = results["sequential"][name]
            assert found == {"statistic": max(detector.up, detector.down) / mon.h,
                             "alarms": len(fired), "total_alarms": detector.alarms}
            assert state(mon.cusums[("m", "1")][name]) == state(detector)
    assert math.isfinite(results["sequential"]["x2"]["statistic"])


@pytest.mark.parametrize("extra", [0, 1])
def test_numeric_statistics_many_equal_one_at_a_time(extra: int) -> None:
    """Each feature's statistics from the batch equal numeric_stats on that feature alone."""
    rng = np.random.default_rng(extra)
    reference = ds.Prepared(build({f"x{i}": rng.normal(0, 1, 2000) for i in range(3)},
                                  model="m"))
    names = tuple(reference.numeric)
    values = [rng.normal(0.1 * i, 1, 150 + extra) for i in range(3)]
    batch = reference.batch(names)
    found = ds.scan(batch, values)
    many = ds.numeric_stats_many(batch, found.counts, found.n, values)
    for i, name in enumerate(names):
        assert many[i] == ds.numeric_stats(reference.numeric[name], values[i])
