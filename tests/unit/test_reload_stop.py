"""A stop that arrives while a reload restarts a sink, and a storm of SIGHUPs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from agent import Component, PluginConfig, PluginContext, Sink, hookimpl
from agent.model import Event
from agent.runtime import Agent
from tests.fixtures.iwtest.common import TestConfig

LOG: list[tuple[str, str]] = []  # (what, the sink's marker): start, stop, stopped
STOPPING = asyncio.Event()


class SlowStop(Sink):
    """A sink whose stop takes a while (a flush to a slow disk)."""

    def __init__(self, marker: str) -> None:
        super().__init__("out")
        self.marker = marker

    async def start(self) -> None:
        LOG.append(("start", self.marker))

    async def deliver(self, events: Sequence[Event]) -> None:
        return None

    async def stop(self) -> None:
        LOG.append(("stop", self.marker))
        STOPPING.set()
        await asyncio.sleep(0.3)
        LOG.append(("stopped", self.marker))


class Plugin:
    @hookimpl
    def inferwatch_config_model(self) -> type[PluginConfig]:
        return TestConfig

    @hookimpl
    def inferwatch_components(self, config: TestConfig, ctx: PluginContext) -> list[Component]:
        return [SlowStop(config.marker)]


plugin = Plugin()


def _config(path: Path, marker: str) -> None:
    path.write_text(f'[agent]\nstate_dir = "{path.parent / "state"}"\n'
                    "[prometheus]\nenabled = false\n[plugins.host]\nenabled = false\n"
                    f'[plugins.slow]\nenabled = true\nmarker = "{marker}"\n')


async def _started(tmp_path: Path) -> tuple[Agent, asyncio.Task[int], Path]:
    LOG.clear()
    STOPPING.clear()
    path = tmp_path / "agent.toml"
    _config(path, "old")
    agent = Agent(path, extra_plugins=["slow=tests.unit.test_reload_stop:plugin"])
    task = asyncio.create_task(agent.run())
    async with asyncio.timeout(10):
        while ("start", "old") not in LOG:
            await asyncio.sleep(0.01)
    return agent, task, path


async def test_a_stop_during_a_reload_stops_every_sink_once(tmp_path: Path) -> None:
    agent, task, path = await _started(tmp_path)
    _config(path, "new")
    os.kill(os.getpid(), signal.SIGHUP)  # the reload restarts the sink
    async with asyncio.timeout(10):
        await STOPPING.wait()  # the old sink is stopping: the reload is half way
    agent.request_stop()
    async with asyncio.timeout(20):
        assert await task == 0
    stops = [marker for what, marker in LOG if what == "stop"]
    started = [marker for what, marker in LOG if what == "start"]
    assert sorted(stops) == sorted(started)  # each sink that started stopped, once
    assert ("stopped", "old") in LOG
    assert LOG.index(("stopped", "old")) < LOG.index(("stop", "new"))


async def test_a_sighup_storm_is_one_reload_after_the_running_one(tmp_path: Path) -> None:
    agent, task, path = await _started(tmp_path)
    _config(path, "new")
    reloads = 0
    real = agent.reload

    async def counted() -> None:
        nonlocal reloads
        reloads += 1
        await real()

    agent.reload = counted  # type: ignore[method-assign]
    for _ in range(200):
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0)
    async with asyncio.timeout(10):
        while ("start", "new") not in LOG:
            await asyncio.sleep(0.01)
    agent.request_stop()
    async with asyncio.timeout(20):
        assert await task == 0
    assert 1 <= reloads <= 2
    assert [m for what, m in LOG if what == "start"] == ["old", "new"]
