"""The fleet consumer's bookkeeping without a broker: what a profile may claim, what it may
not, and that one bad profile never takes the fleet's /metrics down with it."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from plugins.drift import fleet, profile
from tests.helpers import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_consumer",
                                                  ROOT / "contrib" / "fleet" / "consumer.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


consumer = _load()


def _columns(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(0, 1, n),
            "c": rng.choice(np.array(["a", "b", "c"], dtype=object), n)}


@pytest.fixture
def ref() -> profile.Profile:
    return profile.build(_columns(0, 2000), model="fraud", model_version="3")


def _profile(ref: profile.Profile, host: str, end: float = 3600.0) -> dict[str, Any]:
    built = fleet.build(_columns(hash(host) % 1000, 300), ref, host=host, window="1h", end=end,
                        labels=[0, 1, 1], predictions=[0, 1, 0])
    decoded: dict[str, Any] = json.loads(fleet.encode(built))
    return decoded


def _scrape(fleet_: Any) -> str:
    registry = CollectorRegistry()
    registry.register(consumer.FleetMetrics(fleet_))
    return generate_latest(registry).decode()


@pytest.mark.parametrize(("change", "reason"), [
    (lambda p: p["features"]["x"].update(counts=[1, 2, 3]), "bad_counts"),
    (lambda p: p["features"]["c"].update(counts=[1]), "bad_counts"),
    (lambda p: p["features"]["x"].update(counts=[-5] * 100), "malformed"),
    (lambda p: p.update(confusion=[[1, 2]]), "malformed"),
    (lambda p: p.update(classes=["0", "0"]), "malformed"),
    (lambda p: p.update(hosts=["gpu-1", "gpu-2"]), "wrong_host"),
    (lambda p: p.update(hosts=["gpu-2"]), "wrong_host"),
    (lambda p: p.update(model="other"), "model_mismatch"),
    (lambda p: p.update(model_version="4"), "model_mismatch"),
])
def test_a_bad_profile_is_refused_counted_and_the_fleet_still_scrapes(
        ref: profile.Profile, change: Any, reason: str) -> None:
    state = consumer.Fleet([ref])
    assert state.accept("gpu-9", fleet.encode(fleet.WindowProfile(
        **{**_profile(ref, "gpu-9"), "features": {}}))) is not None
    bad = _profile(ref, "gpu-1")
    change(bad)
    assert state.accept("gpu-1", json.dumps(bad).encode()) is None
    assert dict(state.rejected) == {reason: 1}
    assert state.received == 1
    text = _scrape(state)
    assert 'inferwatch_fleet_hosts{model="fraud",model_version="3",window="1h"} 1.0' in text
    assert f'inferwatch_fleet_profiles_rejected_total{{reason="{reason}"}} 1.0' in text


def test_features_the_reference_does_not_know_are_left_out(ref: profile.Profile) -> None:
    state = consumer.Fleet([ref])
    sent = _profile(ref, "gpu-1")
    sent["features"] |= {f"free_text_{i}": {"categories": {"a": 1}} for i in range(1000)}
    topic, retained = state.accept("gpu-1", json.dumps(sent).encode())
    assert topic.endswith("/gpu-1")
    assert sorted(fleet.decode(retained).features) == ["c", "x"]


def test_each_host_is_its_own_partial_and_only_the_newest_windows_are_kept(
        ref: profile.Profile) -> None:
    state = consumer.Fleet([ref])
    for hour in range(consumer.KEEP_WINDOWS + 5):
        for host in ("gpu-1", "gpu-2"):
            topic, payload = state.accept(host, json.dumps(
                _profile(ref, host, 3600.0 * (hour + 1))).encode())
            key, _, named = topic.partition("/")
            assert named == host
            state.partial(key, host, payload)  # the broker echoes our retained partial
    assert len(state.partials) == consumer.KEEP_WINDOWS
    (window, _), = state.merged()
    assert window.end == 3600.0 * (consumer.KEEP_WINDOWS + 5)
    assert window.hosts == ["gpu-1", "gpu-2"]
    late = state.accept("gpu-3", json.dumps(_profile(ref, "gpu-3", 3600.0)).encode())
    assert late is not None  # acknowledged, but older than every kept window: not kept
    assert len(state.partials) == consumer.KEEP_WINDOWS
