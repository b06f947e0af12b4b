"""Every registered plugin honours the component contract (STYLE.md, "Tests")."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.components import START_ORDER, Component
from agent.config import build_config
from agent.context import PluginContext
from agent.loader import discover
from agent.metrics import PluginMetrics
from tests.helpers import ROOT

PLUGINS = discover()
NAMES = [r.name for r in PLUGINS.loaded if r.origin == "built-in"]
_IO_EVENTS = ("open", "socket.connect", "socket.bind", "subprocess.Popen", "os.scandir",
              "os.listdir")
_guard = {"on": False}


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _guard["on"] or event not in _IO_EVENTS:
        return
    if event == "open" and str(args[0]).endswith((".py", ".pyc", ".so")):
        return  # a lazy import is not I/O on the host
    raise AssertionError(f"I/O in a constructor: {event} {args[:2]}")


sys.addaudithook(_audit)


def _components(name: str, tmp_path: Path) -> Iterator[Component]:
    config = build_config({}, PLUGINS.config_models()).plugins[name]
    ctx = PluginContext(plugin=name, config=config, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics(name, 100), emitter=lambda _: True)
    PLUGINS.call(name, "inferwatch_components", config=config, ctx=ctx)  # warm lazy imports
    _guard["on"] = True
    try:
        result = PLUGINS.call(name, "inferwatch_components", config=config, ctx=ctx)
    finally:
        _guard["on"] = False
    yield from result


def test_builtins_are_found() -> None:
    assert {"host", "eventlog"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
async def test_contract(name: str, tmp_path: Path) -> None:
    components = list(_components(name, tmp_path))
    assert components, f"{name} contributes no components with its defaults"
    assert len({c.name for c in components}) == len(components)
    for component in components:
        assert component.kind in START_ORDER
        await component.stop()  # stop without start must work
        await component.stop()  # and be idempotent


@pytest.mark.parametrize("name", NAMES)
def test_plugin_folder_has_readme(name: str) -> None:
    assert (ROOT / "plugins" / name / "README.md").is_file()


def test_example_config_covers_every_builtin() -> None:
    example = tomllib.loads((ROOT / "agent.toml").read_text())
    assert set(NAMES) <= set(example["plugins"])
    build_config(example, PLUGINS.config_models())


def test_every_metric_is_documented() -> None:
    from agent import sinkmetrics  # noqa: PLC0415
    from agent.metrics import MetricDef  # noqa: PLC0415
    from agent.selfmetrics import SelfMetrics  # noqa: PLC0415
    from plugins.alertmanager import metrics as alertmanager  # noqa: PLC0415
    from plugins.alerts import metrics as alerts  # noqa: PLC0415
    from plugins.audit import collector as audit  # noqa: PLC0415
    from plugins.drift import metrics as drift  # noqa: PLC0415
    from plugins.exec import metrics as exec_metrics  # noqa: PLC0415
    from plugins.host import metrics as host  # noqa: PLC0415
    from plugins.ingest import stats as ingest  # noqa: PLC0415
    from plugins.logs import metrics as logs  # noqa: PLC0415
    from plugins.mqtt import metrics as mqtt  # noqa: PLC0415
    from plugins.nvidia import metrics as nvidia  # noqa: PLC0415
    from plugins.quality import metrics as quality  # noqa: PLC0415

    for doc, names in (
        ("metrics.md", {d.name for d in vars(host).values() if isinstance(d, MetricDef)}
         | {m.name for m in SelfMetrics().registry.collect()}),
        ("gpu.md", {d.name for d in vars(nvidia).values() if isinstance(d, MetricDef)}),
        ("mqtt.md", {d.name for d in vars(mqtt).values() if isinstance(d, MetricDef)}),
        ("ingestion.md", {d.name for d in vars(ingest).values() if isinstance(d, MetricDef)}),
        ("quality.md", {d.name for d in vars(quality).values() if isinstance(d, MetricDef)}),
        ("drift.md", {d.name for d in vars(drift).values() if isinstance(d, MetricDef)}),
        ("audit.md", {d.name for d in vars(audit).values() if isinstance(d, MetricDef)}),
        ("alerts.md", {d.name for d in vars(alerts).values() if isinstance(d, MetricDef)}),
        ("sinks.md", {d.name for d in vars(sinkmetrics).values()
                      if isinstance(d, MetricDef)}),
        ("metrics.md", {d.name for mod in (alertmanager, exec_metrics)
                        for d in vars(mod).values() if isinstance(d, MetricDef)}),
        ("logs.md", {d.name for d in vars(logs).values() if isinstance(d, MetricDef)}),
    ):
        documented = (ROOT / "docs" / doc).read_text()
        missing = sorted(n for n in names if f"`{n}" not in documented)
        assert not missing, f"metrics missing from docs/{doc}: {missing}"
