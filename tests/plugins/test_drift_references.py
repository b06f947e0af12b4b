"""Which reference a stream uses (#12 item 3), and monitor state changed only on the event
loop (#12 item 8)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import structlog.testing

from agent.metrics import Accumulator
from agent.window import Window
from agent.worker import INLINE_ROWS
from plugins.drift import metrics as m
from plugins.drift.config import ModelDrift
from plugins.drift.monitor import DriftMonitor
from plugins.drift.profile import Profile, build
from tests.plugins.test_drift import frame, monitor


def _window(features: dict[str, np.ndarray], version: str, start: float = 0.0,
            model: str = "m") -> Window:
    n = len(next(iter(features.values())))
    return Window(model=model, model_version=version, spec="1h", start=start,
                  end=start + 3600, task="regression", n=n, y_pred=np.zeros(n),
                  y_true=np.full(n, np.nan), features=features)


def _profile(version: str, shift: float = 0.0, seed: int = 1) -> Profile:
    columns = frame(np.random.default_rng(seed), 5000, shift=shift)
    return build(columns, model="m", model_version=version)


async def test_a_reference_without_a_version_applies_to_every_version(tmp_path: Path) -> None:
    """`reference build` without --model-version, windows that carry one: before, the
    monitor ignored the file and captured a reference from these (already drifted) rows."""
    mon = monitor(tmp_path)
    mon.set_reference(_profile(""), source="ref.json")
    rng = np.random.default_rng(2)
    for i, version in enumerate(["3", "4"]):
        drifted = _window(frame(rng, 5000, shift=0.5), version, i * 3600.0)
        await mon.process(drifted)
        assert drifted.results["drift"]["features"]["x0"]["drifted"], version
    assert mon.replay_summary() == {
        ("m", v): {"drift_reference": "ref.json", "drift_reference_rows": 5000}
        for v in ("3", "4")}
    assert not list(tmp_path.rglob("reference*")), "nothing captured"


async def test_the_exact_version_wins_over_one_without(tmp_path: Path) -> None:
    mon = monitor(tmp_path)
    mon.set_reference(_profile(""), source="every.json")
    mon.set_reference(_profile("4", shift=0.5), source="v4.json")  # v4's data sits at 0.5
    rng = np.random.default_rng(3)
    v3, v4 = (_window(frame(rng, 5000, shift=0.5), v) for v in ("3", "4"))
    await mon.process(v3)
    await mon.process(v4)
    assert v3.results["drift"]["features"]["x0"]["drifted"]
    assert not v4.results["drift"]["features"]["x0"]["drifted"]
    assert [s["drift_reference"] for s in mon.replay_summary().values()] == [
        "every.json", "v4.json"]


async def test_references_that_apply_to_nothing_are_said(tmp_path: Path) -> None:
    """A configured reference for version 1 and streams of version 2 and of another model:
    a warning per stream that falls back to capture, and at the end one per reference that
    matched no stream, naming the streams seen."""
    path = tmp_path / "v1.json"
    _profile("1").save(path)
    mon = monitor(tmp_path, reference_samples=2000, models={"m": ModelDrift(reference=str(path))})
    rng = np.random.default_rng(4)
    with structlog.testing.capture_logs() as logs:
        await mon.start()
        await mon.process(_window(frame(rng, 1000), "2"))
        await mon.process(_window(frame(rng, 1000), "1", model="other"))
        await mon.stop()
    unmatched = [e for e in logs if e["event"].startswith("no given drift reference")]
    assert [(e["model"], e["model_version"], e["references"]) for e in unmatched] == [
        ("m", "2", [str(path)])]
    unused = [e for e in logs if e["event"] == "drift reference matched no stream"]
    assert [(e["reference"], e["model_version"], e["streams_seen"]) for e in unused] == [
        (str(path), "1", ["m/2", "other/1"])]
    summary = mon.replay_summary()
    assert summary[("m", "2")]["drift_reference"] == "none yet: capturing (1000 of 2000 rows)"


async def test_a_configured_reference_loads_at_start_and_a_bad_one_is_an_error(
        tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    _profile("").save(good)
    _profile("").save(bad)
    mon = monitor(tmp_path, models={"m": ModelDrift(reference=str(good)),
                                    "n": ModelDrift(reference=str(bad))})
    # Checked when the config loads (test_cli_errors); spoilt after that, it is logged.
    bad.write_text('{"model": "m", "numeric": {"x": {"std": null}}}')
    with structlog.testing.capture_logs() as logs:
        await mon.start()
    assert set(mon.refs.given) == {("m", "")}
    assert [e["path"] for e in logs if e["event"] == "drift reference unusable"] == [str(bad)]


# -- #12 item 8: state changes on the event loop only --------------------------------------

class LoopOnly(dict[Any, Any]):
    """A dict that fails the test when it is changed off the thread that made it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.owner = threading.get_ident()

    def _check(self) -> None:
        if threading.get_ident() != self.owner:
            raise AssertionError("monitor state changed off the event loop")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._check()
        super().__delitem__(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._check()
        return super().setdefault(key, default)

    def pop(self, *args: Any) -> Any:
        self._check()
        return super().pop(*args)

    def clear(self) -> None:
        self._check()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._check()
        super().update(*args, **kwargs)


def _guard(mon: DriftMonitor) -> None:
    for owner in [o for o in (mon, getattr(mon, "refs", None)) if o is not None]:
        for name, found in vars(owner).items():
            if type(found) is dict:
                setattr(owner, name, LoopOnly(found))


ROWS = INLINE_ROWS + 400  # windows this large are judged in a thread, beside the scraper


async def test_drift_state_changes_only_on_the_event_loop(tmp_path: Path) -> None:
    """Every dict of the monitor's state is changed only by commit() on the loop, and a
    CUSUM detector a reader may hold is replaced, never updated in place; what a scrape
    reads (the monitor's exports) is committed on the loop too.
    Before: compute() ran setdefault, del and Cusum.update in the worker thread."""
    mon = monitor(tmp_path, reference_samples=2 * ROWS - 400)
    _guard(mon)
    rng = np.random.default_rng(5)
    exported: list[Accumulator] = []

    async def scrape() -> None:
        while True:
            exported.append(mon.exports.merged())
            await asyncio.sleep(0.001)  # spinning on sleep(0) starves the worker thread of the GIL

    scraper = asyncio.create_task(scrape())
    try:
        for i in range(6):  # capture (two windows), then judged windows, two streams
            for version in ("1", "2"):
                before = {k: {n: dataclasses.asdict(c) for n, c in d.items()}
                          for k, d in mon.cusums.items()}
                kept = {k: dict(d) for k, d in mon.cusums.items()}
                await mon.process(_window(frame(rng, ROWS, shift=0.3 * (i > 3)), version,
                                          i * 3600.0))
                for k, detectors in kept.items():  # the objects exported before: untouched
                    assert {n: dataclasses.asdict(c) for n, c in detectors.items()} == before[k]
    finally:
        scraper.cancel()
        await asyncio.gather(scraper, return_exceptions=True)
    assert set(mon.cusums) == {("m", "1"), ("m", "2")}
    assert all(c.samples == 4 * ROWS for d in mon.cusums.values() for c in d.values())
    assert exported
    last = mon.exports.merged()
    assert last.series[m.REFERENCE] == {("m", "1"): 2.0 * ROWS, ("m", "2"): 2.0 * ROWS}
    assert msgspec.json.encode(list(mon.replay_summary().values()))


async def test_a_feature_missing_from_the_first_window_still_enters_the_captured_reference(
        tmp_path: Path) -> None:
    """The first window's rows (a file source, say) lacked an optional numeric and a
    categorical feature: before, the captured reference took only the features every window
    had, so `age` and `country` were never checked again and the multivariate check (it
    needs two numeric features) never ran."""
    mon = monitor(tmp_path, reference_samples=300)
    rng = np.random.default_rng(4)
    first = _window({"amount": rng.normal(size=20)}, "3", 0.0)
    await mon.process(first)
    later = {"amount": rng.normal(size=400), "age": rng.normal(40, 9, size=400),
             "country": np.array(rng.choice(["A", "B"], size=400).tolist(), dtype=object)}
    await mon.process(_window(later, "3", 3600.0))
    profile = mon.refs.active[("m", "3")].profile
    assert sorted(profile.numeric) == ["__prediction", "age", "amount"]
    assert profile.numeric["age"].count == 400  # the 20 rows without it are missing, not 0
    assert sorted(profile.categorical) == ["country"]
    assert profile.corr_features == ["age", "amount"]
    judged = _window(later, "3", 7200.0)
    await mon.process(judged)
    assert judged.results["drift"]["multivariate"]["pair"] == ["age", "amount"]
