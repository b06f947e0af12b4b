"""Drift: statistics against scipy/numpy, the default rule on seeded scenarios, CUSUM, events."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from agent.config import Duration
from agent.context import PluginContext
from agent.metrics import PluginMetrics
from agent.window import Coded, Window
from plugins.drift import statistics as ds
from plugins.drift.config import DriftConfig, Retrain
from plugins.drift.monitor import DriftMonitor, drift_columns
from plugins.drift.profile import BINS, Profile, build, merge
from plugins.drift.sequential import Cusum, calibrate

TOL = 1e-9
CATEGORIES = np.array([f"k{i}" for i in range(10)], dtype=object)


def frame(rng: np.random.Generator, n: int, *, shift: float = 0.0, var: float = 1.0,
          share: float = 0.0, corr: float = 0.0) -> dict[str, np.ndarray]:
    """20 numeric N(0, 1) columns and 5 categorical ones over 10 categories, as in #7."""
    cols = {f"x{i}": rng.normal(0, 1, n) for i in range(20)}
    cols["x0"] = cols["x0"] * math.sqrt(var) + shift
    if corr:
        cols["x2"] = corr * cols["x1"] + math.sqrt(1 - corr ** 2) * cols["x2"]
    for j in range(5):
        p = np.full(10, 0.1)
        if j == 0:
            p[0], p[1] = p[0] + share, p[1] - share
        cols[f"c{j}"] = CATEGORIES[rng.choice(10, n, p=p)]
    return cols


def window(features: dict[str, np.ndarray], start: float = 0.0, *, final: bool = False,
           spec: str = "1h") -> Window:
    n = len(next(iter(features.values())))
    return Window(model="m", model_version="1", spec=spec, start=start, end=start + 3600,
                  task="regression", n=n, y_pred=np.zeros(n), y_true=np.full(n, np.nan),
                  features=features, final=final)


def monitor(tmp_path: Path, reference: Profile | None = None, **config: Any) -> DriftMonitor:
    settings_ = DriftConfig(**config)
    ctx = PluginContext(plugin="drift", config=settings_, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("drift", 1000), emitter=lambda _: True)
    mon = DriftMonitor(settings_, ctx)
    if reference is not None:
        mon.set_reference(reference)
    return mon


@pytest.fixture(scope="module")
def reference() -> Profile:
    rng = np.random.default_rng(1)
    return build(drift_columns(window(frame(rng, 100_000))), model="m", model_version="1")


# -- statistics against their reference computations --------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 3000), st.floats(-1, 1), st.floats(0.3, 3))
def test_numeric_statistics_equal_scipy(seed: int, n: int, shift: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    profile = build({"x": rng.normal(0, 1, 2000)}, model="m").numeric["x"]
    ref = ds.PreparedNumeric(profile)
    x = rng.normal(shift, scale, n)
    found = ds.numeric_stats(ref, x)
    assert found is not None
    edges = np.array(profile.edges)
    q = np.histogram(np.clip(x, edges[0], edges[-1]), edges)[0] / n  # the same binning
    p = np.array(profile.probs)
    mids = (edges[:-1] + edges[1:]) / 2
    assert found["wasserstein"] == pytest.approx(
        sps.wasserstein_distance(mids, mids, p, q) / profile.std, abs=TOL)
    assert found["ks"] == pytest.approx(np.abs(np.cumsum(p) - np.cumsum(q)).max(), abs=TOL)
    assert found["js"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-7)
    a = np.maximum(p.reshape(10, 10).sum(1), 1e-4)
    b = np.maximum(q.reshape(10, 10).sum(1), 1e-4)
    assert found["psi"] == pytest.approx(float(np.sum((b - a) * np.log(b / a))), abs=TOL)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 3000))
def test_categorical_statistics_equal_scipy(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    profile = build({"c": CATEGORIES[rng.choice(8, 5000)]}, model="m").categorical["c"]
    ref = ds.PreparedCategorical(profile)
    values = CATEGORIES[rng.choice(10, n)].astype(object)  # k8, k9: never in the reference
    values[rng.random(n) < 0.05] = None  # missing: left out of n
    found = ds.categorical_stats(ref, values)
    assert found is not None
    assert ds.categorical_stats(ref, Coded.of(values)) == found  # the window's codes: the same
    values = values[values != None]  # noqa: E711 - elementwise on an object array
    n = len(values)
    names = [f"k{i}" for i in range(8)]
    p = np.array([profile.freqs[c] for c in names] + [0.0])
    counts = np.array([np.sum(values == c) for c in names] + [np.sum(np.isin(values,
                                                                              ["k8", "k9"]))])
    q = counts / n
    assert found["tvd"] == pytest.approx(0.5 * np.abs(p - q).sum(), abs=TOL)
    assert found["unseen_rate"] == pytest.approx(q[-1], abs=TOL)
    assert found["js"] == pytest.approx(jensenshannon(p, q, base=2), abs=1e-7)
    used = (p > 0) | (counts > 0)  # the definition: a slot empty on both sides says nothing
    counts, p = counts[used], p[used]
    expected = np.maximum(p, 1e-4) * n
    assert found["chi2"] == pytest.approx(((counts - expected) ** 2 / expected).sum(),
                                          rel=1e-9)


def test_profile_bins_quantiles_roundtrip_and_merge(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 1.0, 20_000)
    cats = CATEGORIES[rng.choice(4, 20_000)]
    whole = build({"x": x, "c": cats, "y": rng.normal(size=20_000)}, model="m")
    numeric = whole.numeric["x"]
    np.testing.assert_allclose(numeric.edges, np.quantile(x, np.linspace(0, 1, BINS + 1)))
    assert sum(numeric.probs) == pytest.approx(1.0)
    assert max(numeric.probs) == pytest.approx(0.01, abs=1e-4)
    path = tmp_path / "ref.json"
    whole.save(path)
    assert path.stat().st_size < 1 << 20
    assert Profile.load(path) == whole
    halves = [build({"x": x[s], "c": cats[s], "y": rng.normal(size=10_000)}, model="m")
              for s in (slice(0, 10_000), slice(10_000, None))]
    merged = merge(*halves)
    assert merged.numeric["x"].count == 20_000
    assert merged.numeric["x"].mean == pytest.approx(x.mean(), abs=TOL)
    assert merged.numeric["x"].std == pytest.approx(x.std(), abs=1e-9)
    assert merged.categorical["c"].freqs == pytest.approx(whole.categorical["c"].freqs)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a reference profile"):
        Profile.load(tmp_path / "bad.json")


# -- the default rule on the scenarios ---------------------------------------------

def flagged(mon: DriftMonitor, features: dict[str, np.ndarray]) -> tuple[set[str], bool]:
    found = mon.compute(window(features))
    assert found is not None
    names = {n for n, f in found["features"].items() if f["drifted"]}
    return names, bool(found["multivariate"].get("drifted"))


@pytest.mark.parametrize(("rows", "windows"), [(10_000, 40), (100_000, 10)])
def test_no_drift_rarely_alarms(tmp_path: Path, reference: Profile, rows: int,
                                windows: int) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(rows)
    alarms = sum(bool(flagged(mon, frame(rng, rows))[0]) for _ in range(windows))
    assert alarms <= 0.05 * windows


@pytest.mark.parametrize(("change", "column"), [
    ({"shift": 0.1}, "x0"), ({"var": 1.2}, "x0"), ({"share": 0.05}, "c0"),
])
def test_power_at_10000_rows(tmp_path: Path, reference: Profile, change: dict[str, float],
                             column: str) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(7)
    hits = [flagged(mon, frame(rng, 10_000, **change))[0] for _ in range(20)]
    assert sum(column in h for h in hits) >= 19  # >= 95%
    assert all(h <= {column} for h in hits)  # and nothing else


def test_a_correlation_change_is_caught_by_the_multivariate_check(
        tmp_path: Path, reference: Profile) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(11)
    results = [flagged(mon, frame(rng, 10_000, corr=0.3)) for _ in range(20)]
    assert sum(mv for _, mv in results) >= 18  # >= 90%
    assert not any(names for names, _ in results)  # both marginals unchanged
    quiet = [flagged(mon, frame(rng, 10_000))[1] for _ in range(25)]
    assert sum(quiet) <= 1  # <= 4% false alarms


def test_a_negligible_shift_at_100000_rows_is_not_drift(tmp_path: Path,
                                                        reference: Profile) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(13)
    hits = [flagged(mon, frame(rng, 100_000, shift=0.03))[0] for _ in range(10)]
    assert sum(bool(h) for h in hits) == 0  # significant, irrelevant
    _, pvalue = sps.ks_2samp(frame(rng, 100_000, shift=0.03)["x0"], rng.normal(size=100_000))
    assert pvalue < 0.01  # what a p-value rule would have flagged


# -- the sequential detector ----------------------------------------------------------------

def test_cusum_matches_the_plain_recursion() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.02, 1, 50_000)
    cusum = Cusum(0.05, 8.0)
    fired = cusum.update(z.copy())
    up = down = 0.0
    expected = []
    for i, value in enumerate(z):
        up, down = max(0.0, up + value - 0.05), max(0.0, down - value - 0.05)
        if up > 8.0 or down > 8.0:
            expected.append(i)
            up = down = 0.0
    assert fired == expected
    assert (cusum.up, cusum.down) == pytest.approx((up, down))


def test_cusum_false_alarms_and_delays_with_the_defaults() -> None:
    k, h = calibrate(1_000_000, 0.1)
    rng = np.random.default_rng(21)
    stable = Cusum(k, h)
    for _ in range(4):
        stable.update(rng.normal(size=5_000_000))
    # 0.01 per 10,000 samples means ~20 alarms in 2*10^7; allow 3 Poisson sd for the draw
    # (the benchmark measures 10^8 samples: 0.0099).
    assert stable.alarms <= 20 + 3 * math.sqrt(20)
    for shift, limit in ((0.1, 1700), (0.25, 450)):
        delays = []
        for _ in range(200):
            detector = Cusum(k, h)
            fired = detector.update(rng.normal(shift, 1, 6000))
            delays.append(fired[0] + 1 if fired else 6000)
        assert np.mean(delays) <= limit, (shift, np.mean(delays))


# -- the monitor: persistence, events, capture, retrain ------------------------------------

async def test_k_of_n_declares_then_resolves(tmp_path: Path, reference: Profile) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(5)
    kinds = []
    for i, shift in enumerate([0.0, 0.3, 0.0, 0.3, 0.3, 0.0, 0.0]):
        events = await mon.process(window(frame(rng, 5000, shift=shift), i * 3600.0))
        kinds.append([e.kind for e in events if e.attributes.get("detector") == "window"])
    assert kinds == [[], [], [], ["drift.detected"], [], ["drift.resolved"], []]


async def test_the_same_window_twice_is_judged_once(tmp_path: Path,
                                                    reference: Profile) -> None:
    mon, rng = monitor(tmp_path, reference, persist_windows=1, persist_of=1), \
        np.random.default_rng(6)
    features = frame(rng, 5000, shift=0.5)
    first = await mon.process(window(features))
    again = window(features, final=True)
    assert [e.kind for e in await mon.process(again)] == ["drift.window"]  # no new judgement
    assert await mon.process(window(features, final=True)) == []  # summarized once
    assert [e.kind for e in first] == ["drift.detected"]
    assert again.results["drift"]["top"][0]["feature"] == "x0"


async def test_reference_captured_from_production_and_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    mon = monitor(tmp_path, reference_samples=2000)
    first = window(frame(rng, 2500))
    assert await mon.process(first) == []
    assert "drift" not in first.results  # this window became the reference
    again = monitor(tmp_path, reference_samples=2000)  # after a restart
    second = window(frame(rng, 2500, shift=1.0), 3600.0)
    await again.process(second)
    assert second.results["drift"]["reference_samples"] == 2500
    assert second.results["drift"]["features"]["x0"]["drifted"]


async def test_retrain_requested_once_per_cooldown_reaches_a_webhook(
        tmp_path: Path, reference: Profile) -> None:
    """The monitor only returns the event; routed by `match` to the webhook sink, it is
    POSTed with the bearer token, alone of the monitor's events."""
    from agent.config import build_config  # noqa: PLC0415
    from agent.delivery import route_for  # noqa: PLC0415
    from plugins.webhook.config import WebhookConfig  # noqa: PLC0415
    from plugins.webhook.sink import WebhookSink  # noqa: PLC0415
    from tests.webhook_receiver import receiving  # noqa: PLC0415

    (tmp_path / "token").write_text("s3cret\n")
    retrain = Retrain(drift_persisted=Duration(7200.0), cooldown=Duration(86400.0))
    mon = monitor(tmp_path, reference, persist_windows=1, persist_of=1, retrain=retrain)
    rng = np.random.default_rng(9)
    emitted = []
    for i in range(8):
        emitted += [(i, e) for e in await mon.process(window(frame(rng, 5000, shift=0.4),
                                                              i * 3600.0))]
    await mon.stop()
    asked = [(i, e.attributes["reason"]) for i, e in emitted if e.kind == "retrain.requested"]
    assert asked == [(2, "drift_persisted")]  # declared at 0, persisted 2 h, then cool-down
    with receiving() as receiver:
        config = build_config({"plugins": {"webhook": {
            "enabled": True, "url": receiver.url, "match": ["retrain.requested"],
            "bearer_token": {"file": str(tmp_path / "token")}}}},
            {"webhook": WebhookConfig}).plugins["webhook"]
        assert isinstance(config, WebhookConfig)
        route = route_for(config)
        assert route is not None
        sink = WebhookSink(config)
        await sink.start()
        await sink.deliver([e for _, e in emitted if route(e)])
        await sink.stop()
    assert len({e.kind for _, e in emitted}) > 1  # the route left the others out
    assert [h["Authorization"] for h, _ in receiver.requests] == ["Bearer s3cret"]
    assert [e["kind"] for e in receiver.events] == ["retrain.requested"]
    assert receiver.events[0]["data"]["top_features"][0]["feature"] == "x0"


def test_the_removed_retrain_webhook_keys_name_their_replacement() -> None:
    from agent.config import build_config  # noqa: PLC0415
    from agent.errors import ConfigError  # noqa: PLC0415

    raw = {"retrain": {"webhook_url": "https://ci/x?token=T0P", "webhook_token": {
        "file": "/nonexistent/token"}}}
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"drift": raw}}, {"drift": DriftConfig})
    (problem,) = caught.value.problems  # the url's, first: one key at a time
    assert problem.startswith("plugins.drift.retrain.webhook_url: removed: ")
    assert 'match = ["retrain.requested"]' in problem
    assert "T0P" not in problem
    del raw["retrain"]["webhook_url"]
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"drift": raw}}, {"drift": DriftConfig})
    assert caught.value.problems == [
        "plugins.drift.retrain.webhook_token: removed: set it as [plugins.webhook] "
        'bearer_token = {file = ...}, with match = ["retrain.requested"] (docs/sinks.md)']


def test_reference_build_from_csv_and_ndjson(tmp_path: Path) -> None:
    from plugins.drift.reference import build_reference  # noqa: PLC0415

    rng = np.random.default_rng(4)
    csv_path = tmp_path / "train.csv"
    rows = ["amount,country,flag"] + [f"{rng.normal():.4f},{rng.choice(['DE', 'FR'])},"
                                      f"{'' if i % 10 == 0 else i % 2}" for i in range(500)]
    csv_path.write_text("\n".join(rows) + "\n")
    profile = build_reference(csv_path, "m", "1")
    assert set(profile.numeric) == {"amount", "flag"}
    assert set(profile.categorical) == {"country"}
    ndjson = tmp_path / "train.ndjson"
    ndjson.write_text("\n".join(json.dumps({
        "model": "m", "request_id": i, "prediction": i % 2, "score": 0.25 + 0.5 * (i % 2),
        "features": {"amount": float(i), "country": "DE"}}) for i in range(300)) + "\n")
    profile = build_reference(ndjson, "m", "1")
    assert profile.count == 300
    assert {"amount", "__score"} <= set(profile.numeric)
    assert {"country", "__prediction"} <= set(profile.categorical)


async def test_monitor_runs_off_the_loop(tmp_path: Path, reference: Profile) -> None:
    mon, rng = monitor(tmp_path, reference), np.random.default_rng(2)
    features = frame(rng, 20_000)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await mon.process(window(features))
    task.cancel()
    assert ticks > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["normal", "gamma", "uniform", "rounded"]))
def test_bin_lookup_equals_binary_search(seed: int, shape: str) -> None:
    rng = np.random.default_rng(seed)
    data = {"normal": rng.normal(size=5000), "gamma": rng.gamma(1.0, 1.0, 5000),
            "uniform": rng.uniform(size=5000), "rounded": np.round(rng.normal(size=5000), 1)}
    ref = ds.PreparedNumeric(build({"x": data[shape]}, model="m").numeric["x"])
    probe = np.concatenate([rng.normal(0, 3, 5000), ref.inner, np.nextafter(ref.inner, -np.inf),
                            np.nextafter(ref.inner, np.inf), [-1e300, 1e300, -np.inf, np.inf]])
    np.testing.assert_array_equal(ref.bins(probe),
                                  np.searchsorted(ref.inner, probe, side="right"))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9000), st.floats(0.0, 0.3))
def test_one_scan_counts_and_correlates_as_the_column_by_column_path(seed: int, n: int,
                                                                     gaps: float) -> None:
    rng = np.random.default_rng(seed)
    reference = ds.Prepared(build({f"x{i}": rng.normal(i, 1 + i, 3000) for i in range(4)},
                                  model="m"))
    names = tuple(reference.numeric)
    batch = reference.batch(names)
    assert batch.tabled
    values = [rng.normal(i, 3 + i, n) for i in range(4)]  # beyond the reference range too
    for v in values:
        v[rng.random(n) < gaps] = np.nan
    found = ds.scan(batch, values)
    for i, name in enumerate(names):
        counts, count = ds.bin_counts(reference.numeric[name], values[i])
        np.testing.assert_array_equal(found.counts[i], counts)
        assert found.n[i] == count
    columns = dict(zip(names, values, strict=True))
    alone = ds.correlation_check(reference, columns, ds.Rule(), 3.0)
    together = ds.correlation_check(reference, columns, ds.Rule(), 3.0, (names, found))
    assert (alone is None) == (together is None)
    if alone is not None and together is not None:
        assert together["n"] == alone["n"]
        assert together["score"] == pytest.approx(alone["score"], abs=1e-9)
