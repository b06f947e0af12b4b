"""The real agent with the NVIDIA plugin on the fake backend, driven through its scenario file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from plugins.nvidia.fake import scenario
from tests.conftest import ConfigWriter
from tests.helpers import poll, value

pytestmark = pytest.mark.integration
GPU0 = {"gpu": "0", "uuid": "GPU-00000000-fake-4000-8000-000000000000",
        "model": "NVIDIA H100 80GB HBM3"}


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # atomic, so the agent never reads half a file


def _config(write_config: ConfigWriter, path: Path) -> tuple[Path, int]:
    return write_config(
        "[plugins.host]\nenabled = false\n[plugins.eventlog]\nenabled = true\n"
        '[plugins.ticker]\ninterval = "100ms"\n'
        f'[plugins.nvidia]\nenabled = true\nbackend = "fake"\nfake_scenario = "{path}"\n'
        'interval = "200ms"\ntimeout = "150ms"\nevent_wait = "50ms"\n')


def test_gpu_metrics_xids_hang_and_loss(write_config: ConfigWriter, agent_factory,
                                        tmp_path: Path) -> None:
    data = scenario(2)
    path = tmp_path / "gpus.json"
    _write(path, data)
    agent = agent_factory(*_config(write_config, path), "-p", "iwtest.common:ticker")
    m = poll(lambda: (s := agent.scrape()) and value(s, "inferwatch_gpu_power_watts", **GPU0)
             and value(s, "inferwatch_gpu_nvml_up") == 1 and s, what="GPU metrics")
    assert value(m, "inferwatch_gpu_power_watts", **GPU0) == 312
    assert value(m, "inferwatch_gpu_up", **GPU0) == 1

    data["xids"] = [{"gpu": 0, "xid": 79, "seq": n} for n in (1, 2, 3)]
    _write(path, data)
    poll(lambda: value(agent.scrape(), "inferwatch_gpu_xid_errors_total", **GPU0, xid="79")
         == 3, what="three identical XIDs counted")
    poll(lambda: agent.log().count('"kind": "gpu.xid"') == 3, what="three gpu.xid events")

    data["gpus"][0]["hang"] = ["nvmlDeviceGetPowerUsage"]
    _write(path, data)
    poll(lambda: value(agent.scrape(), "inferwatch_gpu_up", **GPU0) == 0, what="hang noticed")
    assert value(agent.scrape(), "inferwatch_gpu_nvml_up") == 0
    ticks = value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0
    began = time.monotonic()
    poll(lambda: (value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0)
         >= ticks + 10, what="neighbour cadence during the NVML hang")
    assert time.monotonic() - began < 3.0
    assert "NVML call has not returned; GPU marked down" in agent.log()

    data["gpus"][0]["hang"] = []
    data["gpus"][1]["lost"] = True
    _write(path, data)
    poll(lambda: value(agent.scrape(), "inferwatch_gpu_up", **GPU0) == 1, what="recovered")
    poll(lambda: '"kind": "gpu.lost"' in agent.log(), what="gpu.lost event")
    assert agent.stop() == 0


def test_no_driver_says_so_once(write_config: ConfigWriter, agent_factory,
                                tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    _write(path, scenario(1, init_error="LIBRARY_NOT_FOUND"))
    agent = agent_factory(*_config(write_config, path), "-p", "iwtest.common:ticker")
    poll(lambda: (value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0) > 20,
         what="a few GPU intervals")
    assert value(agent.scrape(), "inferwatch_gpu_nvml_up") == 0
    assert value(agent.scrape(), "inferwatch_plugin_errors_total", plugin="nvidia",
                 component="gpus", reason="exception") is None
    assert agent.log().count("no NVIDIA driver on this host") == 1
    assert agent.stop() == 0


def test_real_nvml_without_a_driver_logs_one_line(write_config: ConfigWriter, agent_factory
                                                  ) -> None:
    """The real pynvml on a host without libnvidia-ml: the collector says so once, and the
    XID service retries quietly instead of failing (a warning and a backoff line) each time."""
    try:
        import pynvml  # noqa: PLC0415

        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this host has an NVIDIA driver")
    agent = agent_factory(*write_config(
        "[plugins.host]\nenabled = false\n"
        '[plugins.ticker]\ninterval = "100ms"\n'
        '[plugins.nvidia]\nenabled = true\ninterval = "200ms"\nevent_wait = "50ms"\n'),
        "-p", "iwtest.common:ticker")
    # 3 s of ticks: the XID service's backoff (1 s, 2 s, ...) would have restarted it twice.
    poll(lambda: (value(agent.scrape(), "inferwatch_test_ticker_ticks_total") or 0) >= 30,
         what="3 seconds of ticks")
    nvidia = [line for line in agent.log().splitlines() if '"plugin": "nvidia"' in line]
    assert len(nvidia) == 1, "\n".join(nvidia)
    assert "no NVIDIA driver on this host" in nvidia[0]
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_gpu_nvml_up") == 0
    assert value(metrics, "inferwatch_plugin_up", plugin="nvidia", component="xid") == 1
    assert value(metrics, "inferwatch_plugin_restarts_total", plugin="nvidia",
                 component="xid") in (None, 0)
    assert agent.stop() == 0
