"""A faithful fake of the part of NVML we use: pynvml's names, signatures and error codes.

It is driven by a scenario (a dict, or a JSON file re-read when it changes, so a test can
inject XIDs, hangs, lost GPUs or a driver reload into a running agent). Used by the tests,
by `bench/gpu.py`, and by anyone trying the plugin without a GPU.

Scenario keys: "driver", "cuda" (int, e.g. 12040), "init_error" (an NVML_ERROR_* name),
"generation" (change it to emulate a driver reload), "xids" ([{"gpu", "xid", "seq"}]) and
"gpus": [{"name", "uuid", "pci_bus_id", "lost", "hang": [function names that block while
listed], "unsupported": [function names], "errors": {function name: an NVML_ERROR_* name it
raises}, "values": {key: value overrides}}].
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

H100 = {
    "utilization.gpu": 57, "utilization.memory": 31, "encoder": 0, "decoder": 0,
    "memory.total": 85_520_809_984, "memory.used": 40_000_000_000, "bar1.total": 134_217_728,
    "bar1.used": 3_145_728, "temperature.gpu": 45, "temperature.memory": 51,
    "threshold.0": 92, "threshold.1": 89, "threshold.2": 95, "threshold.3": 87,
    "power": 312_000, "power_limit": 700_000, "energy": 123_456_789,
    "clock.0": 1980, "clock.1": 1980, "clock.2": 2619,
    "max_clock.0": 1980, "max_clock.1": 1980, "max_clock.2": 2619,
    "pstate": 0, "fan": 0, "clocks_event_reasons": 0,
    "pcie.gen": 5, "pcie.gen_max": 5, "pcie.width": 16, "pcie.width_max": 16,
    "pcie.tx_kb": 1200, "pcie.rx_kb": 800, "pcie.replay": 0,
    "ecc_mode": 1, "ecc.0.0": 0, "ecc.0.1": 0, "ecc.1.0": 0, "ecc.1.1": 0,
    "retired.0": 0, "retired.1": 0, "retired_pending": 0,
    "remap.corr": 0, "remap.unc": 0, "remap.pending": 0, "remap.failure": 0,
    "nvlink_links": 18, "nvlink_state": 1, "nvlink_errors": 0,
    "persistence": 1, "compute_mode": 0, "mig_mode": 0, "mig_instances": 0,
    "processes": [],
}
DEFAULT_UNSUPPORTED = ["nvmlDeviceGetFanSpeed", "nvmlDeviceGetRetiredPages",
                       "nvmlDeviceGetRetiredPagesPendingStatus"]


def scenario(gpus: int = 2, **extra: Any) -> dict[str, Any]:
    """A healthy host with `gpus` H100s."""
    return {
        "driver": "550.54.15", "cuda": 12040, "generation": 0, "xids": [],
        "gpus": [{"name": "NVIDIA H100 80GB HBM3",
                  "uuid": f"GPU-{i:08x}-fake-4000-8000-000000000000",
                  "pci_bus_id": f"00000000:{0x18 + i:02X}:00.0", "lost": False, "hang": [],
                  "unsupported": list(DEFAULT_UNSUPPORTED), "values": {}} for i in range(gpus)],
        **extra,
    }


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _error(name: str) -> pynvml.NVMLError:
    return pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{name}"))


class FakeNvml:
    def __init__(self, source: dict[str, Any] | Path) -> None:
        self._path = source if isinstance(source, Path) else None
        self._data: dict[str, Any] = {} if isinstance(source, Path) else source
        self._mtime = 0.0
        self._lock = threading.Lock()
        self._initialised = 0
        self._generation: Any = None
        self._delivered = 0
        self._registered: set[int] = set()
        self.calls = 0

    # -- scenario -----------------------------------------------------------------------

    @property
    def data(self) -> dict[str, Any]:
        if self._path is not None:
            with self._lock:
                mtime = self._path.stat().st_mtime
                if mtime != self._mtime:
                    self._data, self._mtime = json.loads(self._path.read_text()), mtime
        return self._data

    def _gpu(self, handle: _Handle, fn: str) -> dict[str, Any]:
        self.calls += 1
        if not self._initialised:
            raise _error("UNINITIALIZED")
        if self.data.get("generation") != self._generation:
            raise _error("LIB_RM_VERSION_MISMATCH")
        gpu: dict[str, Any] = self.data["gpus"][handle.index]
        while fn in self.data["gpus"][handle.index].get("hang", []):
            time.sleep(0.02)  # stuck in the driver until the scenario lets go
        if gpu.get("lost"):
            raise _error("GPU_IS_LOST")
        if fn in gpu.get("unsupported", []):
            raise _error("NOT_SUPPORTED")
        if error := gpu.get("errors", {}).get(fn):
            raise _error(error)
        return gpu

    def _value(self, handle: _Handle, fn: str, key: str) -> Any:
        gpu = self._gpu(handle, fn)
        return gpu.get("values", {}).get(key, H100[key])

    # -- system ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names, so one collector fits both
        if error := self.data.get("init_error"):
            raise _error(error)
        self._initialised += 1
        self._generation = self.data.get("generation")

    def nvmlShutdown(self) -> None:  # noqa: N802
        if not self._initialised:
            raise _error("UNINITIALIZED")
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return str(self.data["driver"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return int(self.data["cuda"])

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        if not self._initialised:
            raise _error("UNINITIALIZED")
        return len(self.data["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:  # noqa: N802
        if not 0 <= index < self.nvmlDeviceGetCount():
            raise _error("INVALID_ARGUMENT")
        return _Handle(index)

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:  # noqa: N802
        return handle.index

    # -- identity -------------------------------------------------------------------------

    def nvmlDeviceGetName(self, h: _Handle) -> str:  # noqa: N802
        return str(self._gpu(h, "nvmlDeviceGetName")["name"])

    def nvmlDeviceGetUUID(self, h: _Handle) -> str:  # noqa: N802
        return str(self._gpu(h, "nvmlDeviceGetUUID")["uuid"])

    def nvmlDeviceGetPciInfo(self, h: _Handle) -> Any:  # noqa: N802
        return SimpleNamespace(busId=self._gpu(h, "nvmlDeviceGetPciInfo")["pci_bus_id"])

    # -- readings -------------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, h: _Handle) -> Any:  # noqa: N802
        fn = "nvmlDeviceGetUtilizationRates"
        return SimpleNamespace(gpu=self._value(h, fn, "utilization.gpu"),
                               memory=self._value(h, fn, "utilization.memory"))

    def nvmlDeviceGetEncoderUtilization(self, h: _Handle) -> list[int]:  # noqa: N802
        return [self._value(h, "nvmlDeviceGetEncoderUtilization", "encoder"), 167_000]

    def nvmlDeviceGetDecoderUtilization(self, h: _Handle) -> list[int]:  # noqa: N802
        return [self._value(h, "nvmlDeviceGetDecoderUtilization", "decoder"), 167_000]

    def nvmlDeviceGetMemoryInfo(self, h: _Handle) -> Any:  # noqa: N802
        fn = "nvmlDeviceGetMemoryInfo"
        total, used = self._value(h, fn, "memory.total"), self._value(h, fn, "memory.used")
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetBAR1MemoryInfo(self, h: _Handle) -> Any:  # noqa: N802
        fn = "nvmlDeviceGetBAR1MemoryInfo"
        total, used = self._value(h, fn, "bar1.total"), self._value(h, fn, "bar1.used")
        return SimpleNamespace(bar1Total=total, bar1Used=used, bar1Free=total - used)

    def nvmlDeviceGetTemperature(self, h: _Handle, sensor: int) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetTemperature", "temperature.gpu"))

    def nvmlDeviceGetFieldValues(self, h: _Handle, ids: Sequence[int]) -> list[Any]:  # noqa: N802
        value = self._value(h, "nvmlDeviceGetFieldValues", "temperature.memory")
        return [SimpleNamespace(fieldId=i, nvmlReturn=pynvml.NVML_SUCCESS,
                                valueType=pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
                                value=SimpleNamespace(uiVal=value)) for i in ids]

    def nvmlDeviceGetTemperatureThreshold(self, h: _Handle, t: int) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetTemperatureThreshold", f"threshold.{t}"))

    def nvmlDeviceGetPowerUsage(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetPowerUsage", "power"))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetEnforcedPowerLimit", "power_limit"))

    def nvmlDeviceGetTotalEnergyConsumption(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetTotalEnergyConsumption", "energy"))

    def nvmlDeviceGetClockInfo(self, h: _Handle, clock: int) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetClockInfo", f"clock.{clock}"))

    def nvmlDeviceGetMaxClockInfo(self, h: _Handle, clock: int) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetMaxClockInfo", f"max_clock.{clock}"))

    def nvmlDeviceGetPerformanceState(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetPerformanceState", "pstate"))

    def nvmlDeviceGetFanSpeed(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetFanSpeed", "fan"))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: _Handle) -> int:  # noqa: N802
        fn = "nvmlDeviceGetCurrentClocksEventReasons"
        return int(self._value(h, fn, "clocks_event_reasons"))

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetCurrPcieLinkGeneration", "pcie.gen"))

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetMaxPcieLinkGeneration", "pcie.gen_max"))

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetCurrPcieLinkWidth", "pcie.width"))

    def nvmlDeviceGetMaxPcieLinkWidth(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetMaxPcieLinkWidth", "pcie.width_max"))

    def nvmlDeviceGetPcieThroughput(self, h: _Handle, counter: int) -> int:  # noqa: N802
        key = "pcie.tx_kb" if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else "pcie.rx_kb"
        return int(self._value(h, "nvmlDeviceGetPcieThroughput", key))

    def nvmlDeviceGetPcieReplayCounter(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetPcieReplayCounter", "pcie.replay"))

    def nvmlDeviceGetEccMode(self, h: _Handle) -> list[int]:  # noqa: N802
        mode = int(self._value(h, "nvmlDeviceGetEccMode", "ecc_mode"))
        return [mode, mode]

    def nvmlDeviceGetTotalEccErrors(self, h: _Handle, error: int, scope: int) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetTotalEccErrors", f"ecc.{error}.{scope}"))

    def nvmlDeviceGetRetiredPages(self, h: _Handle, cause: int) -> list[int]:  # noqa: N802
        return list(range(int(self._value(h, "nvmlDeviceGetRetiredPages", f"retired.{cause}"))))

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: _Handle) -> int:  # noqa: N802
        fn = "nvmlDeviceGetRetiredPagesPendingStatus"
        return int(self._value(h, fn, "retired_pending"))

    def nvmlDeviceGetRemappedRows(self, h: _Handle) -> tuple[int, int, int, int]:  # noqa: N802
        fn = "nvmlDeviceGetRemappedRows"
        return tuple(int(self._value(h, fn, f"remap.{k}"))  # type: ignore[return-value]
                     for k in ("corr", "unc", "pending", "failure"))

    def nvmlDeviceGetNvLinkState(self, h: _Handle, link: int) -> int:  # noqa: N802
        if link >= self._value(h, "nvmlDeviceGetNvLinkState", "nvlink_links"):
            raise _error("INVALID_ARGUMENT")
        state = self._value(h, "nvmlDeviceGetNvLinkState", "nvlink_state")
        return int(state[link] if isinstance(state, list) else state)

    def nvmlDeviceGetNvLinkErrorCounter(self, h: _Handle, link: int, c: int) -> int:  # noqa: N802
        errors = self._value(h, "nvmlDeviceGetNvLinkErrorCounter", "nvlink_errors")
        return int(errors.get(f"{link}.{c}", 0) if isinstance(errors, dict) else errors)

    def nvmlDeviceGetPersistenceMode(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetPersistenceMode", "persistence"))

    def nvmlDeviceGetComputeMode(self, h: _Handle) -> int:  # noqa: N802
        return int(self._value(h, "nvmlDeviceGetComputeMode", "compute_mode"))

    def nvmlDeviceGetMigMode(self, h: _Handle) -> list[int]:  # noqa: N802
        mode = int(self._value(h, "nvmlDeviceGetMigMode", "mig_mode"))
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: _Handle) -> int:  # noqa: N802
        return 7 if self._value(h, "nvmlDeviceGetMaxMigDeviceCount", "mig_mode") else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: _Handle, i: int) -> _Handle:  # noqa: N802
        if i >= self._value(h, "nvmlDeviceGetMigDeviceHandleByIndex", "mig_instances"):
            raise _error("NOT_FOUND")
        return h

    def nvmlDeviceGetComputeRunningProcesses(self, h: _Handle) -> list[Any]:  # noqa: N802
        procs = self._value(h, "nvmlDeviceGetComputeRunningProcesses", "processes")
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used")) for p in procs]

    # -- events ---------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> object:  # noqa: N802
        self._registered = set()
        return object()

    def nvmlDeviceRegisterEvents(self, h: _Handle, types: int, event_set: object) -> None:  # noqa: N802
        self._gpu(h, "nvmlDeviceRegisterEvents")
        self._registered.add(h.index)

    def nvmlEventSetWait_v2(self, event_set: object, timeout_ms: int) -> Any:  # noqa: N802
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            pending = [x for x in self.data.get("xids", [])
                       if x["seq"] > self._delivered and x["gpu"] in self._registered]
            if pending:
                event = min(pending, key=lambda x: x["seq"])
                self._delivered = event["seq"]
                return SimpleNamespace(device=_Handle(event["gpu"]), eventData=event["xid"],
                                       eventType=pynvml.nvmlEventTypeXidCriticalError)
            if time.monotonic() >= deadline:
                raise _error("TIMEOUT")
            time.sleep(0.01)

    def nvmlEventSetFree(self, event_set: object) -> None:  # noqa: N802
        self._registered = set()
