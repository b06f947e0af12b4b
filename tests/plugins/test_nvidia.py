"""The NVIDIA plugin against the faithful fake: fields, XIDs, hangs, lost GPUs, no driver."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pynvml
import pytest
import structlog.testing

from agent.config import Duration
from agent.metrics import Accumulator, MetricDef
from agent.model import Severity
from plugins.nvidia import metrics as m
from plugins.nvidia.collector import GpuCollector, HealthCollector
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.events import XidService
from plugins.nvidia.fake import FakeNvml, scenario
from plugins.nvidia.readers import REASONS
from plugins.nvidia.state import GpuId, NvidiaState

Found = list[tuple[str, Severity, dict[str, Any], GpuId | None]]


class Rig:
    def __init__(self, gpus: int = 2, **config: Any) -> None:
        self.data = scenario(gpus)
        self.fake = FakeNvml(self.data)
        self.state = NvidiaState()
        self.events: Found = []
        self.config = NvidiaConfig(**config)
        self.collector = GpuCollector(self.config, self.fake, self.state,
                                      lambda *e: self.events.append(e))

    def collect(self) -> dict[MetricDef, dict[tuple[str, ...], float]]:
        acc = Accumulator()
        self.collector.collect(acc)
        return acc.series

    def health(self) -> dict[MetricDef, dict[tuple[str, ...], float]]:
        acc = Accumulator()
        HealthCollector(self.state, float(self.config.timeout)).publish(acc)
        return acc.series

    def gpu(self, i: int) -> dict[str, Any]:
        gpu: dict[str, Any] = self.data["gpus"][i]
        return gpu


def _labels(i: int, *extra: str) -> tuple[str, ...]:
    return (str(i), f"GPU-{i:08x}-fake-4000-8000-000000000000", "NVIDIA H100 80GB HBM3", *extra)


def test_fields_in_base_units_for_two_gpus() -> None:
    rig = Rig(2)
    series = rig.collect()
    assert series[m.UTILIZATION][_labels(1, "gpu")] == 0.57
    assert series[m.POWER][_labels(0)] == 312.0
    assert series[m.POWER_LIMIT][_labels(0)] == 700.0
    assert series[m.ENERGY][_labels(0)] == 123_456.789
    assert series[m.CLOCK][_labels(0, "sm")] == 1.98e9
    assert series[m.MEMORY_FREE][_labels(0)] == 85_520_809_984 - 40_000_000_000
    assert series[m.TEMPERATURE][_labels(0, "memory")] == 51
    assert series[m.TEMPERATURE_THRESHOLD][_labels(0, "slowdown")] == 89
    assert series[m.PCIE_THROUGHPUT][_labels(0, "tx")] == 1200 * 1024
    assert len(series[m.NVLINK_UP]) == 2 * 18
    assert m.FAN not in series, "H100 SXM has no fan: NOT_SUPPORTED is skipped, not an error"
    assert m.RETIRED_PAGES not in series
    health = rig.health()
    assert health[m.NVML_UP][()] == 1
    assert health[m.DRIVER_INFO][("550.54.15", "12.4")] == 1
    assert health[m.GPU_UP][_labels(1)] == 1


def test_unsupported_fields_are_not_asked_again() -> None:
    rig = Rig(1)
    counts = []
    for _ in range(3):
        before = rig.fake.calls
        rig.collect()
        counts.append(rig.fake.calls - before)
    first, second, third = counts
    assert second == third < first, "probing (absent fields, NVLink links) happens once"
    rig.gpu(0)["unsupported"].append("nvmlDeviceGetPowerUsage")
    rig.collector._readers.clear()  # a new reader learns afresh
    assert m.POWER not in rig.collect()


def test_eight_gpus_each_fully_reported() -> None:
    series = Rig(8).collect()
    assert {labels[0] for labels in series[m.INFO]} == {str(i) for i in range(8)}
    per_gpu = sum(len(v) for v in series.values()) / 8
    assert per_gpu == 153


def test_processes_and_mig_instances() -> None:
    rig = Rig(1)
    rig.gpu(0)["values"].update({
        "processes": [{"pid": 1, "used": 1 << 30}, {"pid": 999_999_999, "used": 5 << 20},
                      {"pid": 2, "used": None}],
        "mig_mode": 1, "mig_instances": 3})
    series = rig.collect()
    memory = {k[3:]: v for k, v in series[m.PROCESS_MEMORY].items()}
    comm = Path("/proc/1/comm").read_text().strip()
    assert memory == {("1", comm): 1 << 30, ("999999999", "unknown"): 5 << 20}
    assert series[m.MIG_MODE][_labels(0)] == 1
    assert series[m.MIG_INSTANCES][_labels(0)] == 3


def test_throttling_decoded_integrated_and_episodes() -> None:
    rig = Rig(1)
    rig.collect()
    reasons = REASONS["sw_thermal_slowdown"] | REASONS["hw_slowdown"]
    rig.gpu(0)["values"]["clocks_event_reasons"] = reasons
    series = rig.collect()
    active = {k[3]: v for k, v in series[m.THROTTLE].items()}
    assert active == {r: int(r in ("sw_thermal_slowdown", "hw_slowdown")) for r in REASONS}
    started = [e for e in rig.events if e[0] == "gpu.throttling"]
    assert {(e[2]["episode"], e[2]["state"]) for e in started} == {
        ("thermal", "started"), ("hardware", "started")}
    series = rig.collect()
    assert series[m.THROTTLE_SECONDS][_labels(0, "sw_thermal_slowdown")] > 0
    assert series[m.THROTTLE_SECONDS][_labels(0, "gpu_idle")] == 0
    rig.gpu(0)["values"]["clocks_event_reasons"] = 0
    rig.collect()
    ended = [e[2] for e in rig.events if e[2].get("state") == "ended"]
    assert {e["episode"] for e in ended} == {"thermal", "hardware"}
    assert all(e["duration_seconds"] > 0 for e in ended)


def test_ecc_increase_and_row_remap_failure_raise_events() -> None:
    rig = Rig(1)
    rig.collect()
    rig.gpu(0)["values"].update({"ecc.1.0": 2, "ecc.1.1": 2, "remap.failure": 1,
                                 "remap.unc": 3})
    series = rig.collect()
    assert series[m.ECC_ERRORS][_labels(0, "uncorrected", "volatile")] == 2
    kinds = {(e[0], e[1]) for e in rig.events}
    assert ("gpu.ecc_errors", Severity.CRITICAL) in kinds
    assert ("gpu.row_remap_failure", Severity.CRITICAL) in kinds
    rig.collect()
    assert sum(e[0] == "gpu.row_remap_failure" for e in rig.events) == 1, "once per failure"


def test_gpu_lost_mid_run() -> None:
    rig = Rig(2)
    rig.collect()
    rig.gpu(1)["lost"] = True
    series = rig.collect()
    assert {k[0] for k in series[m.INFO]} == {"0"}, "a lost GPU's series are withdrawn"
    assert rig.health()[m.GPU_UP][_labels(1)] == 0
    rig.collect()
    lost = [e for e in rig.events if e[0] == "gpu.lost"]
    assert len(lost) == 1
    assert lost[0][1] == Severity.CRITICAL
    rig.gpu(1)["lost"] = False
    rig.collect()
    assert rig.health()[m.GPU_UP][_labels(1)] == 1


def test_gpu_that_disappears_leaves_no_series() -> None:
    rig = Rig(2)
    rig.collect()
    rig.data["gpus"].pop()
    assert {k[0] for k in rig.collect()[m.INFO]} == {"0"}
    assert set(rig.health()[m.GPU_UP]) == {_labels(0)}


def test_no_driver_is_said_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(1)
    rig.data["init_error"] = "LIBRARY_NOT_FOUND"
    for _ in range(3):
        assert rig.collect() == {}
    assert rig.health()[m.NVML_UP][()] == 0
    del rig.data["init_error"]
    assert m.INFO in rig.collect()
    assert rig.health()[m.NVML_UP][()] == 1


def test_driver_reload_reinitialises_nvml() -> None:
    rig = Rig(1)
    rig.collect()
    rig.data["generation"] = 1
    with pytest.raises(pynvml.NVMLError):
        rig.collect()
    assert rig.health()[m.NVML_UP][()] == 0
    assert m.INFO in rig.collect(), "the next collection initialises NVML again"


def test_hang_is_blamed_on_one_gpu() -> None:
    rig = Rig(2, interval=Duration(1), timeout=Duration(0.05))
    rig.collect()
    rig.gpu(1)["hang"] = ["nvmlDeviceGetPowerUsage"]
    worker = threading.Thread(target=rig.collect, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while rig.state.hung(0.05) is None:
        assert time.monotonic() < deadline, "the hang was never noticed"
        time.sleep(0.01)
    assert rig.state.hung(0.05)[:2] == (1, "nvmlDeviceGetPowerUsage")  # type: ignore[index]
    health = rig.health()
    assert health[m.NVML_UP][()] == 0
    assert health[m.GPU_UP][_labels(1)] == 0
    assert health[m.GPU_UP][_labels(0)] == 1
    rig.gpu(1)["hang"] = []
    worker.join(5)
    assert rig.health()[m.GPU_UP][_labels(1)] == 1


@pytest.fixture
def xid_rig() -> Rig:
    rig = Rig(2)
    rig.collect()
    return rig


async def test_xid_burst_counts_every_repeat(xid_rig: Rig) -> None:
    rig = xid_rig
    service = XidService(rig.fake, rig.state, lambda *e: rig.events.append(e), 0.05)
    await service.start()
    task = asyncio.create_task(service.run())
    burst = [(0, 79), (1, 13), (1, 13), (1, 13), (0, 48)]
    rig.data["xids"] = [{"gpu": g, "xid": x, "seq": n + 1} for n, (g, x) in enumerate(burst)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while sum(e[0] == "gpu.xid" for e in rig.events) < 5:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.stop()
    xids = [(e[3].index, e[2]["xid"], e[1]) for e in rig.events if e[0] == "gpu.xid" and e[3]]
    assert xids == [(0, 79, Severity.CRITICAL), (1, 13, Severity.WARNING),
                    (1, 13, Severity.WARNING), (1, 13, Severity.WARNING),
                    (0, 48, Severity.CRITICAL)]
    counts = rig.health()[m.XID_ERRORS]
    assert counts[_labels(1, "13")] == 3, "a counter, so identical repeats are all visible"
    assert counts[_labels(0, "79")] == 1
    assert "fallen off the bus" in next(e[2]["description"] for e in rig.events
                                        if e[0] == "gpu.xid")


def test_costly_fields_are_read_sparingly_and_still_exported() -> None:
    """On an H100 the energy counter costs ~8.6 ms of CPU per read and each max clock ~1.6 ms."""
    rig = Rig(gpus=1)
    calls: dict[str, int] = {}
    for name in ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetMaxClockInfo",
                 "nvmlDeviceGetPowerUsage"):
        original = getattr(rig.fake, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        setattr(rig.fake, name, counted)
    series = [rig.collect() for _ in range(12)]
    assert calls["nvmlDeviceGetPowerUsage"] == 12  # a live reading: every collection
    assert calls["nvmlDeviceGetTotalEnergyConsumption"] == 2  # every 6th
    assert calls["nvmlDeviceGetMaxClockInfo"] == 3  # once per clock in 30 collections
    assert all(len(s[m.ENERGY]) == 1 and len(s[m.CLOCK_MAX]) == 3 for s in series)


@pytest.mark.parametrize("cause", ["LIBRARY_NOT_FOUND", "NO_PERMISSION"])
async def test_xid_service_waits_quietly_for_a_driver(cause: str) -> None:
    """No driver (or no device access yet): start() succeeds and run() retries NVML without
    failing; once NVML answers it subscribes and delivers XIDs."""
    rig = Rig(1)
    rig.data["init_error"] = cause
    attempts = []
    init = rig.fake.nvmlInit

    def counted() -> None:
        attempts.append(1)
        init()

    rig.fake.nvmlInit = counted  # type: ignore[method-assign]
    service = XidService(rig.fake, rig.state, lambda *e: rig.events.append(e), 0.05,
                         retry=0.01)
    await service.start()  # before the fix: NotReadyError, a warning and a backoff each time
    task = asyncio.create_task(service.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(attempts) < 5:
        assert loop.time() < deadline, "run() does not retry"
        await asyncio.sleep(0.01)
    assert not task.done(), "run() failed for want of a driver"
    del rig.data["init_error"]
    rig.data["xids"] = [{"gpu": 0, "xid": 79, "seq": 1}]
    while not any(e[0] == "gpu.xid" for e in rig.events):
        assert loop.time() < deadline, "the XID service never subscribed"
        assert not task.done(), task
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.stop()
    assert rig.fake._initialised == 0, "stop() released the NVML reference it took"


@pytest.mark.parametrize("function", ["nvmlDeviceGetPowerUsage", "nvmlDeviceGetUUID"])
def test_one_gpus_error_does_not_blank_the_others(function: str) -> None:
    """NVML_ERROR_UNKNOWN on GPU 1 (mid-read, or while identifying it): GPU 0 keeps every
    series, GPU 1 is down with its error counted, and NVML is not reported as hung."""
    rig = Rig(2)
    rig.collect()
    rig.gpu(1)["errors"] = {function: "UNKNOWN"}
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            series = rig.collect()
    assert series[m.POWER][_labels(0)] == 312
    assert series[m.INFO][(*_labels(0), "00000000:18:00.0")] == 1
    assert not any(key[0] == "1" for metric in series.values() for key in metric), \
        "GPU 1's half-read series are withdrawn, not exported"
    assert rig.state.in_call is None
    assert rig.state.hung(0.0) is None
    health = rig.health()
    assert health[m.NVML_UP][()] == 1
    assert health[m.GPU_UP][_labels(0)] == 1
    assert health[m.GPU_UP][_labels(1)] == 0
    assert health[m.GPU_ERRORS][_labels(1, "unknown")] == 3
    said = [e for e in logs if e["event"].startswith("GPU read failed")]
    assert [(e["gpu"], e["function"]) for e in said] == [(1, function)], "once, attributed"
    rig.gpu(1)["errors"] = {}
    series = rig.collect()
    assert series[m.POWER][_labels(1)] == 312
    assert rig.health()[m.GPU_UP][_labels(1)] == 1


def test_a_driver_wide_error_still_closes_the_call() -> None:
    """A reset-class error mid-collection propagates (NVML is re-initialised) but the call in
    flight is closed in `finally`, so the health collector does not report a hang."""
    rig = Rig(2)
    rig.collect()
    rig.gpu(1)["errors"] = {"nvmlDeviceGetPowerUsage": "DRIVER_NOT_LOADED"}
    with pytest.raises(pynvml.NVMLError):
        rig.collect()
    assert rig.state.in_call is None
    assert rig.state.hung(0.0) is None


@pytest.mark.parametrize(("cause", "said"), [
    ("LIBRARY_NOT_FOUND", "no NVIDIA driver on this host"),
    ("NO_PERMISSION", "no permission to open the NVIDIA devices"),
])
def test_nvml_unavailable_is_said_once_per_cause(cause: str, said: str) -> None:
    """No device access (the hardened unit without the GPU drop-in) is like no driver: one
    line naming the remedy, quiet retries, no failure and restart every interval."""
    rig = Rig(1)
    rig.data["init_error"] = cause
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert rig.collect() == {}
    assert [e["event"][:len(said)] for e in logs] == [said]
    del rig.data["init_error"]
    assert m.INFO in rig.collect()
