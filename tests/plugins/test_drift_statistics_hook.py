"""Drift statistics from plugins, through `inferwatch_drift_statistics` (the module-global
`register_statistic` it replaces was called by nothing): a plugin's statistic is computed on
every numeric feature of a window, reported in the results and exported; a broken one is
counted and left out; names that could shadow or flood are refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog.testing

from agent import PluginConfig, PluginContext, hookimpl
from agent.loader import discover
from agent.metrics import PluginMetrics
from agent.runtime import Agent
from plugins.drift import metrics as m
from plugins.drift.config import DriftConfig
from plugins.drift.monitor import DriftMonitor
from plugins.drift.profile import NumericProfile, Profile
from tests.helpers import run_cli
from tests.integration.test_replay import _history, _lines, _training
from tests.plugins.test_drift import frame, reference, window  # noqa: F401 - a fixture


def median_shift(values: np.ndarray, ref: NumericProfile) -> float | None:
    """The window's median against the reference's mean, in reference sigmas."""
    finite = values[np.isfinite(values)]
    return float((np.median(finite) - ref.mean) / ref.std) if len(finite) else None


def broken(values: np.ndarray, ref: NumericProfile) -> float:
    raise ZeroDivisionError("a plugin's bug")


class Statistics:
    @hookimpl
    def inferwatch_drift_statistics(self) -> dict[str, Any]:
        return {"median_shift": median_shift, "broken": broken,
                "not_a_number": lambda values, ref: float("nan"),
                "Bad Name": median_shift, "wasserstein": median_shift, "not_callable": 7}


PLUGIN = Statistics()


def _hook() -> Any:
    found = discover()
    found.manager.register(PLUGIN, name="median")
    return found.manager.hook


async def test_a_plugins_statistic_is_computed_on_each_window(tmp_path: Path,
                                                              reference: Profile) -> None:  # noqa: F811
    config = DriftConfig()
    ctx = PluginContext(plugin="drift", config=config, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("drift", 1000), emitter=lambda _: True,
                        hook=_hook())
    with structlog.testing.capture_logs() as logs:
        mon = DriftMonitor(config, ctx)
        mon.set_reference(reference)
        columns = frame(np.random.default_rng(4), 4000, shift=0.5)
        w = window(columns)
        await mon.process(w)
        await mon.process(window(columns, start=3600.0))
    features = w.results["drift"]["features"]
    expected = median_shift(columns["x0"], reference.numeric["x0"])
    assert features["x0"]["median_shift"] == pytest.approx(expected, abs=1e-12)
    assert features["x0"]["median_shift"] > 0.4  # the shift of 0.5 sigma, seen
    assert features["x0"]["wasserstein"] != features["x0"]["median_shift"]  # not shadowed
    assert all("broken" not in f and "not_a_number" not in f for f in features.values())
    series = mon.exports.merged().series
    assert series[m.SCORE][("m", "1", "1h", "x0", "median_shift")] == features["x0"][
        "median_shift"]
    # two windows of 21 numeric columns (20 features and the regression's prediction)
    assert series[m.STATISTIC_ERRORS] == {("median_shift",): 0.0, ("broken",): 42.0,
                                          ("not_a_number",): 42.0}
    refused = sorted(e["statistic"] for e in logs if e["event"] == "drift statistic refused")
    assert refused == ["Bad Name", "not_callable", "wasserstein"]
    failed = [e["statistic"] for e in logs if "from a plugin failed" in e["event"]]
    assert failed == ["broken", "not_a_number"]  # once each, not once per window


def test_replay_with_a_statistic_plugin(tmp_path: Path) -> None:
    """`-p` loads the plugin; replay's windows carry its statistic."""
    samples, _ = _history(tmp_path, shift_after=0)
    ref = tmp_path / "ref.json"
    built = run_cli("reference", "build", "--from", str(_training(tmp_path)), "--model",
                    "fraud", "--model-version", "3", "--out", str(ref))
    assert built.returncode == 0, built.stderr
    done = run_cli("replay", "-p", f"median={__name__}:PLUGIN", "--samples", str(samples),
                   "--window", "1h", "--reference", str(ref))
    assert done.returncode == 0, done.stderr
    first = next(w for w in _lines(done.stdout) if w["type"] == "window")
    assert first["drift"]["features"]["x"]["median_shift"] > 0.5  # the data are shifted
    assert json.dumps(first)  # plain JSON


SEEN: list[list[str]] = []


class Probe:
    """A plugin that asks, from its components hook, what every plugin's hook answers."""

    @hookimpl
    def inferwatch_components(self, config: PluginConfig, ctx: PluginContext) -> list[Any]:
        SEEN.append(sorted(k for answer in ctx.hook.inferwatch_drift_statistics()
                           for k in answer))
        return []


PROBE = Probe()


async def test_the_running_agent_hands_plugins_the_hook(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                    "[prometheus]\nenabled = false\n[plugins.host]\nenabled = false\n")
    agent = Agent(path, extra_plugins=[f"probe={__name__}:PROBE", f"median={__name__}:PLUGIN"])
    task = asyncio.create_task(agent.run())
    async with asyncio.timeout(10):
        while not SEEN:
            await asyncio.sleep(0.01)
    agent.request_stop()
    async with asyncio.timeout(20):
        assert await task == 0
    assert SEEN == [["Bad Name", "broken", "median_shift", "not_a_number", "not_callable",
                     "wasserstein"]]
