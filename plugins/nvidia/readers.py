"""Reads one GPU: every field, each skipped when NVML says this GPU does not support it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml

from agent.metrics import Accumulator, MetricDef
from agent.model import Severity
from plugins.nvidia import metrics as m
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.state import GpuId, NvidiaState

# A GPU answering these for a function will answer them again: stop asking.
UNSUPPORTED = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION,
               pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT}
REASONS = {
    "gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4,
    "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40, "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}
EPISODES = {  # throttling episodes worth an event, and the reasons behind each
    "thermal": REASONS["sw_thermal_slowdown"] | REASONS["hw_thermal_slowdown"],
    "power": REASONS["sw_power_cap"] | REASONS["hw_power_brake_slowdown"],
    "hardware": REASONS["hw_slowdown"],
}
CLOCKS = {"graphics": pynvml.NVML_CLOCK_GRAPHICS, "sm": pynvml.NVML_CLOCK_SM,
          "memory": pynvml.NVML_CLOCK_MEM}
THRESHOLDS = {"shutdown": pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
              "slowdown": pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
              "memory_max": pynvml.NVML_TEMPERATURE_THRESHOLD_MEM_MAX,
              "gpu_max": pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX}
NVLINK_COUNTERS = {"replay": 0, "recovery": 1, "crc_flit": 2, "crc_data": 3}
Finding = tuple[str, Severity, dict[str, Any]]

# Collections between reads of costly NVML fields (the value in between is the last read):
# settings that change only with a reset or a reconfiguration, and slow counters.
STATIC, SLOW = 30, 6


class GpuReader:
    def __init__(self, nvml: Any, gpu: GpuId, state: NvidiaState, config: NvidiaConfig) -> None:
        self.nvml, self.gpu, self.state, self.config = nvml, gpu, state, config
        self.handle: Any = None
        self.labels = gpu.labels
        self._out = Accumulator()
        self._unsupported: set[tuple[str, tuple[Any, ...]]] = set()
        self._throttle_seconds: dict[str, float] = dict.fromkeys(REASONS, 0.0)
        self._episodes: dict[str, float] = {}
        self._last_read: float | None = None
        self._ecc: dict[str, int] = {}
        self._remap_failure = 0
        self._nvlinks: list[int] | None = None
        self._reads = 0
        self._cache: dict[tuple[str, tuple[Any, ...]], tuple[int, Any]] = {}

    def read(self, out: Accumulator) -> Iterator[Finding]:
        """Write this GPU's series into `out`; yield the events its changes warrant."""
        self._reads += 1
        self._out = out
        out.add(m.INFO, 1, **self.labels, pci_bus_id=self.gpu.pci_bus_id)
        self._utilisation()
        self._memory()
        self._thermal_power_clocks()
        yield from self._throttling()
        self._pcie()
        yield from self._ecc_and_memory_health()
        self._modes()
        if self.config.nvlink:
            self._nvlink()
        if self.config.processes:
            self._processes()

    # -- plumbing -------------------------------------------------------------------------

    def call(self, function: str, *args: Any, every: int = 1) -> Any:
        """Call NVML for this GPU; None when the GPU lacks the field (remembered).

        `every`: read only every that many collections and repeat the last value between.
        On a real H100 a few calls cost milliseconds of CPU each (the energy counter ~8.6 ms,
        each max-clock read ~1.6 ms) for values that never or barely change.
        """
        key = (function, args)
        if every > 1:
            cached = self._cache.get(key)
            if cached is not None and self._reads - cached[0] < every:
                return cached[1]
        value = self._call(key)
        if every > 1 and value is not None:
            self._cache[key] = (self._reads, value)
        return value

    def _call(self, key: tuple[str, tuple[Any, ...]]) -> Any:
        function, args = key
        if key in self._unsupported:
            return None
        self.state.begin(self.gpu.index, function)
        try:
            return getattr(self.nvml, function)(self.handle, *args)
        except pynvml.NVMLError as exc:
            if exc.value not in UNSUPPORTED:
                raise
            self._unsupported.add(key)
            return None

    def put(self, metric: MetricDef, value: float | None, *, mul: float = 1, div: float = 1,
            **labels: str) -> None:
        """Add a reading converted to base units (dividing keeps 57 % exactly 0.57)."""
        if value is not None:
            self._out.add(metric, value * mul / div, **self.labels, **labels)

    # -- fields ---------------------------------------------------------------------------

    def _utilisation(self) -> None:
        if (rates := self.call("nvmlDeviceGetUtilizationRates")) is not None:
            self.put(m.UTILIZATION, rates.gpu, div=100, engine="gpu")
            self.put(m.UTILIZATION, rates.memory, div=100, engine="memory")
        for engine, function in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                                 ("decoder", "nvmlDeviceGetDecoderUtilization")):
            if (util := self.call(function)) is not None:
                self.put(m.UTILIZATION, util[0], div=100, engine=engine)

    def _memory(self) -> None:
        if (mem := self.call("nvmlDeviceGetMemoryInfo")) is not None:
            self.put(m.MEMORY_USED, mem.used)
            self.put(m.MEMORY_FREE, mem.free)
            self.put(m.MEMORY_TOTAL, mem.total)
        if (bar1 := self.call("nvmlDeviceGetBAR1MemoryInfo", every=SLOW)) is not None:
            self.put(m.BAR1_USED, bar1.bar1Used)
            self.put(m.BAR1_TOTAL, bar1.bar1Total)

    def _thermal_power_clocks(self) -> None:
        temp = self.call("nvmlDeviceGetTemperature", pynvml.NVML_TEMPERATURE_GPU)
        self.put(m.TEMPERATURE, temp, sensor="gpu")
        self.put(m.TEMPERATURE, self._memory_temperature(), sensor="memory")
        for name, threshold in THRESHOLDS.items():
            value = self.call("nvmlDeviceGetTemperatureThreshold", threshold, every=STATIC)
            self.put(m.TEMPERATURE_THRESHOLD, value, threshold=name)
        self.put(m.POWER, self.call("nvmlDeviceGetPowerUsage"), div=1000)
        self.put(m.POWER_LIMIT, self.call("nvmlDeviceGetEnforcedPowerLimit"), div=1000)
        self.put(m.ENERGY, self.call("nvmlDeviceGetTotalEnergyConsumption", every=SLOW),
                 div=1000)
        for name, clock in CLOCKS.items():
            self.put(m.CLOCK, self.call("nvmlDeviceGetClockInfo", clock), mul=1e6, clock=name)
            self.put(m.CLOCK_MAX, self.call("nvmlDeviceGetMaxClockInfo", clock, every=STATIC),
                     mul=1e6, clock=name)
        self.put(m.PSTATE, self.call("nvmlDeviceGetPerformanceState"))
        self.put(m.FAN, self.call("nvmlDeviceGetFanSpeed"), div=100)

    def _memory_temperature(self) -> float | None:
        values = self.call("nvmlDeviceGetFieldValues", (pynvml.NVML_FI_DEV_MEMORY_TEMP,))
        if not values or values[0].nvmlReturn != pynvml.NVML_SUCCESS:
            return None
        value = values[0].value
        return float(value.uiVal if values[0].valueType ==
                     pynvml.NVML_VALUE_TYPE_UNSIGNED_INT else value.dVal)

    def _throttling(self) -> Iterator[Finding]:
        now = time.monotonic()
        elapsed = 0.0 if self._last_read is None else now - self._last_read
        self._last_read = now
        mask = self.call("nvmlDeviceGetCurrentClocksEventReasons")
        if mask is None:
            mask = self.call("nvmlDeviceGetCurrentClocksThrottleReasons")
        if mask is None:
            return
        for reason, bit in REASONS.items():
            active = bool(mask & bit)
            self._throttle_seconds[reason] += elapsed if active else 0.0
            self.put(m.THROTTLE, int(active), reason=reason)
            self.put(m.THROTTLE_SECONDS, self._throttle_seconds[reason], reason=reason)
        yield from self._episode_events(mask, now)

    def _episode_events(self, mask: int, now: float) -> Iterator[Finding]:
        for episode, bits in EPISODES.items():
            reasons = sorted(r for r, b in REASONS.items() if b & bits & mask)
            started = self._episodes.get(episode)
            if reasons and started is None:
                self._episodes[episode] = now
                yield "gpu.throttling", Severity.WARNING, {
                    "episode": episode, "state": "started", "reasons": reasons}
            elif not reasons and started is not None:
                del self._episodes[episode]
                yield "gpu.throttling", Severity.INFO, {
                    "episode": episode, "state": "ended",
                    "duration_seconds": round(now - started, 3)}

    def _pcie(self) -> None:
        self.put(m.PCIE_GEN, self.call("nvmlDeviceGetCurrPcieLinkGeneration"))
        self.put(m.PCIE_GEN_MAX, self.call("nvmlDeviceGetMaxPcieLinkGeneration"))
        self.put(m.PCIE_WIDTH, self.call("nvmlDeviceGetCurrPcieLinkWidth"))
        self.put(m.PCIE_WIDTH_MAX, self.call("nvmlDeviceGetMaxPcieLinkWidth"))
        for direction, counter in (("tx", pynvml.NVML_PCIE_UTIL_TX_BYTES),
                                   ("rx", pynvml.NVML_PCIE_UTIL_RX_BYTES)):
            value = self.call("nvmlDeviceGetPcieThroughput", counter)
            self.put(m.PCIE_THROUGHPUT, value, mul=1024, direction=direction)
        self.put(m.PCIE_REPLAYS, self.call("nvmlDeviceGetPcieReplayCounter", every=SLOW))

    def _ecc_and_memory_health(self) -> Iterator[Finding]:
        if (mode := self.call("nvmlDeviceGetEccMode", every=STATIC)) is not None:
            self.put(m.ECC_MODE, mode[0])
            if mode[0]:
                yield from self._ecc_counts()
        for cause, label in ((pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                              "single_bit"),
                             (pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
                              "double_bit")):
            pages = self.call("nvmlDeviceGetRetiredPages", cause)
            self.put(m.RETIRED_PAGES, None if pages is None else len(pages), cause=label)
        self.put(m.RETIRED_PENDING, self.call("nvmlDeviceGetRetiredPagesPendingStatus"))
        if (rows := self.call("nvmlDeviceGetRemappedRows")) is not None:
            yield from self._remapped_rows(rows)

    def _ecc_counts(self) -> Iterator[Finding]:
        for error, err_code in (("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
            for scope, scope_code in (("volatile", pynvml.NVML_VOLATILE_ECC),
                                      ("aggregate", pynvml.NVML_AGGREGATE_ECC)):
                count = self.call("nvmlDeviceGetTotalEccErrors", err_code, scope_code)
                self.put(m.ECC_ERRORS, count, error=error, scope=scope)
                if count is None or scope != "volatile":
                    continue
                before = self._ecc.get(error)
                self._ecc[error] = count
                if before is not None and count > before:
                    severity = Severity.CRITICAL if error == "uncorrected" else Severity.WARNING
                    yield "gpu.ecc_errors", severity, {
                        "error": error, "new": count - before, "total": count}

    def _remapped_rows(self, rows: tuple[int, int, int, int]) -> Iterator[Finding]:
        corrected, uncorrected, pending, failure = rows
        self.put(m.REMAPPED_ROWS, corrected, kind="correctable")
        self.put(m.REMAPPED_ROWS, uncorrected, kind="uncorrectable")
        self.put(m.REMAP_PENDING, pending)
        self.put(m.REMAP_FAILURE, failure)
        if failure and not self._remap_failure:
            yield "gpu.row_remap_failure", Severity.CRITICAL, {
                "description": "row remapping failed: the GPU needs service",
                "uncorrectable_rows": uncorrected}
        self._remap_failure = failure

    def _modes(self) -> None:
        self.put(m.PERSISTENCE, self.call("nvmlDeviceGetPersistenceMode"))
        self.put(m.COMPUTE_MODE, self.call("nvmlDeviceGetComputeMode"))
        if (mig := self.call("nvmlDeviceGetMigMode", every=STATIC)) is None:
            return
        self.put(m.MIG_MODE, mig[0])
        if mig[0]:
            self.put(m.MIG_INSTANCES, self._mig_instances())

    def _mig_instances(self) -> int:
        found = 0
        for slot in range(self.call("nvmlDeviceGetMaxMigDeviceCount") or 0):
            self.state.begin(self.gpu.index, "nvmlDeviceGetMigDeviceHandleByIndex")
            try:
                self.nvml.nvmlDeviceGetMigDeviceHandleByIndex(self.handle, slot)
            except pynvml.NVMLError as exc:
                if exc.value != pynvml.NVML_ERROR_NOT_FOUND:
                    raise
                continue
            found += 1
        return found

    def _nvlink(self) -> None:
        if self._nvlinks is None:  # probe once which links exist
            links = range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18))
            self._nvlinks = [link for link in links
                             if self.call("nvmlDeviceGetNvLinkState", link) is not None]
        for link in self._nvlinks:
            label = str(link)
            self.put(m.NVLINK_UP, self.call("nvmlDeviceGetNvLinkState", link), link=label)
            for name, counter in NVLINK_COUNTERS.items():
                value = self.call("nvmlDeviceGetNvLinkErrorCounter", link, counter)
                self.put(m.NVLINK_ERRORS, value, link=label, counter=name)

    def _processes(self) -> None:
        for proc in self.call("nvmlDeviceGetComputeRunningProcesses") or []:
            if proc.usedGpuMemory is not None:
                self.put(m.PROCESS_MEMORY, proc.usedGpuMemory, pid=str(proc.pid),
                         process=_process_name(proc.pid))


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "unknown"
    except OSError:
        return "unknown"

