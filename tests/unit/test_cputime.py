"""CPU spent in threads a collector hands its work to is charged to that collector: the
scheduled audit's plugin, probe and endpoint threads counted for nobody (issue 17)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import cputime
from agent.bus import EventBus
from agent.components import Collector
from agent.config import Duration, PluginConfig
from agent.context import PluginContext
from agent.metrics import Accumulator, PluginMetrics
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised
from plugins.audit import threads
from plugins.audit.collector import AuditCollector
from plugins.audit.config import AuditConfig
from tests.helpers import FIXTURES

BURN = 0.3  # CPU seconds a helper thread spends


def burn(seconds: float) -> float:
    """Spin until this thread has used `seconds` of CPU; the CPU it used."""
    began = time.thread_time()
    while time.thread_time() - began < seconds:
        sum(range(1000))
    return time.thread_time() - began


class HandsOn(Collector):
    """Collects by handing the work to the audit's threads, two levels deep."""

    def __init__(self) -> None:
        super().__init__("c")
        self.spent = 0.0

    def collect(self, out: Accumulator) -> None:
        outer = threads.submit("test.cpu.outer", self._outer)
        self.spent += outer.result(30)

    def _outer(self) -> float:
        inner = threads.submit("test.cpu.inner", burn, BURN)
        return burn(BURN) + inner.result(30)


async def collect_once(component: Collector, plugin: str = "p",
                       settings: PluginConfig | None = None) -> tuple[Supervised, float]:
    """One collection under a real supervisor: it, and its CPU counter before the stop
    removes the series."""
    metrics = SelfMetrics()
    sup = Supervised(plugin, component, settings or PluginConfig(interval=Duration(3600),
                                                                 timeout=Duration(60)),
                     metrics=metrics, store=PluginMetrics(plugin, 1000),
                     bus=EventBus(100, metrics), host_id="h")
    sup.launch()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not metrics.registry.get_sample_value(
                "inferwatch_collector_last_success_timestamp_seconds",
                {"plugin": plugin, "component": component.name}):
            assert loop.time() < deadline, "no collection in time"
            await asyncio.sleep(0.01)
        counted = metrics.registry.get_sample_value(
            "inferwatch_plugin_cpu_seconds_total", {"plugin": plugin,
                                                    "component": component.name})
    finally:
        await sup.stop(5)
    return sup, counted or 0.0


async def test_work_handed_to_other_threads_is_charged_to_the_collector() -> None:
    component = HandsOn()
    sup, counted = await collect_once(component)
    assert component.spent >= 2 * BURN
    # Its own thread only waited: before, cpu_seconds was a few milliseconds.
    assert sup.cpu_seconds >= component.spent
    assert sup.cpu_seconds < component.spent + 0.5
    assert counted == pytest.approx(sup.cpu_seconds)


def test_outside_a_collection_nothing_is_charged() -> None:
    """`inferwatch audit` on the command line: no account, the function unchanged."""
    assert cputime.on_behalf(burn) is burn
    charged: list[float] = []
    with cputime.charging(charged.append):
        wrapped = cputime.on_behalf(burn)
    assert wrapped is not burn
    done = threading.Thread(target=wrapped, args=(0.05,))
    done.start()
    done.join(10)
    assert len(charged) == 1
    assert charged[0] >= 0.05


BURNER = '''
import time
from agent import hookimpl

@hookimpl
def inferwatch_audit_checks(config, audit):
    began = time.thread_time()
    while time.thread_time() - began < {burn}:
        sum(range(1000))
    return []
'''


async def test_the_scheduled_audit_is_charged_its_threads_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real audit collector, with a plugin whose checks burn CPU in their thread."""
    (tmp_path / "audit_burner.py").write_text(BURNER.format(burn=1.0))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("audit_burner", None)
    (tmp_path / "state").mkdir()
    config = tmp_path / "agent.toml"
    healthy = FIXTURES / "audit" / "healthy"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[plugins.audit]\nenabled = true\nroot = "{healthy}"\n'
                      'probe_bytes = 1048576\nprobe_seconds = 0.5\n'
                      'skip = ["network.*", "integration.*"]\n'
                      '[plugins.burner]\nenabled = true\n')
    settings = AuditConfig(enabled=True, interval=Duration(3600), timeout=Duration(60))
    ctx = PluginContext(plugin="audit", config=settings, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("audit", 1000), emitter=lambda _: True,
                        config_path=config, extra_plugins=("burner=audit_burner",))
    sup, counted = await collect_once(AuditCollector(settings, ctx), "audit", settings)
    assert sup.cpu_seconds >= 1.0  # the burner's second, in its own thread
    assert counted == pytest.approx(sup.cpu_seconds)


async def test_cpu_charged_after_the_stop_adds_no_series_back() -> None:
    """A helper thread that returns after its collector was stopped (a hung probe)."""
    release = threading.Event()

    class Leaves(Collector):
        def collect(self, out: Accumulator) -> None:
            threads.submit("test.cpu.late", lambda: release.wait(30) and burn(0.01))

    sup, _ = await collect_once(Leaves("c"))
    release.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while sup.cpu_seconds < 0.01:
        assert loop.time() < deadline, "the late work was never charged"
        await asyncio.sleep(0.01)
    assert sup.metrics.registry.get_sample_value(
        "inferwatch_plugin_cpu_seconds_total", {"plugin": "p", "component": "c"}) is None
