"""The engine's first evaluation waits one interval (a fresh start shows no alerts)."""

from __future__ import annotations

from pathlib import Path

from agent.config import build_config
from agent.readback import no_families
from agent.testing import fake_context, running, wait_for
from plugins.alerts.config import AlertsConfig
from plugins.alerts.service import AlertService, Runner


async def test_nothing_is_judged_before_the_collectors_first_interval(tmp_path: Path) -> None:
    """At start every component's plugin_up is 0 until its first run: an evaluation then
    held a pending PluginDown for each of them (seven on a default config)."""
    config = build_config({"plugins": {"alerts": {"interval": "1h"}}},
                          {"alerts": AlertsConfig}).plugins["alerts"]
    assert isinstance(config, AlertsConfig)
    ctx = fake_context("alerts", config, state_root=tmp_path)
    reads: list[int] = []
    ctx.read_metrics = lambda: reads.append(1) or no_families()  # type: ignore[func-returns-value]
    runner = Runner(config, ctx)
    flushed: list[int] = []
    flush = runner.flush

    async def counted() -> None:
        await flush()
        flushed.append(1)

    runner.flush = counted  # type: ignore[method-assign]
    async with running(AlertService(runner)):
        await wait_for(lambda: flushed)  # the start's flush; an evaluation would follow it
        for _ in range(3):
            await wait_for(lambda: True)
    assert reads == []
    assert runner.engine.stats.evaluations == 0
