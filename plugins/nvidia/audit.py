"""GPU readiness for `inferwatch audit`, through the same backend as the collector (fake too).

Read-only NVML queries: driver and CUDA, memory against the models configured, persistence,
ECC, MIG, PCIe link, throttling, thermal and power headroom, memory health, and the XIDs
the kernel logged since boot.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from typing import Any

import pynvml

from agent.audit import AuditCheck, AuditContext, Status
from agent.model import Severity
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.readers import REASONS
from plugins.nvidia.xid import describe

MIN_CUDA = (12, 0)
THERMAL_MARGIN = 10  # °C below the slowdown threshold
POWER_MARGIN = 0.95  # of the enforced limit
HARDWARE = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
SOFTWARE = ("sw_thermal_slowdown", "sw_power_cap")
XID_LINE = re.compile(rb"NVRM: Xid \(PCI:[^)]*\): (\d+)")
KMSG_LIMIT = 16 << 20


def gpu_checks(config: NvidiaConfig, audit: AuditContext, nvml: Any) -> Iterator[AuditCheck]:
    try:
        nvml.nvmlInit()
    except pynvml.NVMLError as exc:
        yield _no_driver(config.enabled, str(exc))
        return
    try:
        yield from _host(config, audit, nvml)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            nvml.nvmlShutdown()


def _no_driver(enabled: bool, error: str) -> AuditCheck:
    return AuditCheck(
        "gpu.driver", "fail" if enabled else "pass",
        f"NVML unavailable: {error}" + ("" if enabled else " (nvidia plugin disabled)"),
        "NVML answers when [plugins.nvidia] is enabled",
        "without the driver no model reaches a GPU",
        "install the NVIDIA driver (and nvidia-persistenced), or disable the plugin"
        if enabled else "")


def _host(config: NvidiaConfig, audit: AuditContext, nvml: Any) -> Iterator[AuditCheck]:
    count = int(nvml.nvmlDeviceGetCount())
    yield _driver(str(nvml.nvmlSystemGetDriverVersion()),
                  int(nvml.nvmlSystemGetCudaDriverVersion()), count, config.enabled)
    memories = []
    for index in range(count):
        gpu = _Gpu(nvml, index)
        memories.append(gpu.memory())
        yield from gpu.checks()
    if count:
        yield _memory(memories, audit.model_bytes)
        yield _xids(xid_history(audit, nvml))


def _driver(driver: str, cuda: int, count: int, enabled: bool) -> AuditCheck:
    version = (cuda // 1000, cuda % 1000 // 10)
    status: Status = "warn" if version < MIN_CUDA or (count and not enabled) else "pass"
    fix = ("enable [plugins.nvidia] to watch these GPUs" if count and not enabled else
           "a driver of the R535 branch or later" if version < MIN_CUDA else "")
    return AuditCheck(
        "gpu.driver", status, f"driver {driver}, CUDA {version[0]}.{version[1]}, {count} GPUs",
        f"CUDA >= {MIN_CUDA[0]}.{MIN_CUDA[1]} (what current inference runtimes are built "
        "against)", "a runtime built for a newer CUDA than the driver offers does not start",
        fix)


def _memory(memories: list[int], model_bytes: int) -> AuditCheck:
    total, largest = sum(memories), max(memories)
    status: Status = ("fail" if model_bytes > total else
                      "warn" if model_bytes > largest else "pass")
    return AuditCheck(
        "gpu.memory", status, f"{total} bytes on {len(memories)} GPUs (largest {largest})",
        f">= {model_bytes} bytes of models configured, on one GPU" if model_bytes else
        "informational (set [plugins.audit] model_paths or model_bytes)",
        "weights, KV cache and activations must fit in GPU memory; a model larger than one "
        "GPU must be sharded", {"fail": "GPUs with more memory, or quantised models",
                                "warn": "shard the model (tensor parallelism) or use a GPU "
                                        "with more memory"}.get(status, ""))


class _Gpu:
    """One GPU's read-only queries; a query NVML does not support on it answers None."""

    def __init__(self, nvml: Any, index: int) -> None:
        self.nvml, self.index = nvml, index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.prefix = f"gpu{index}"

    def get(self, function: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, function)(self.handle, *args)
        except pynvml.NVMLError:
            return None

    def memory(self) -> int:
        info = self.get("nvmlDeviceGetMemoryInfo")
        return int(info.total) if info is not None else 0

    def check(self, name: str, status: Status, value: Any, threshold: str, *, why: str,
              fix: str = "") -> AuditCheck:
        return AuditCheck(f"{self.prefix}.{name}", status, value, threshold, why,
                          fix if status != "pass" else "")

    def checks(self) -> Iterator[AuditCheck]:
        yield self._model()
        yield self._persistence()
        yield self._ecc()
        yield self._mig()
        yield self._pcie()
        yield self._throttle()
        yield self._headroom()
        yield self._memory_health()

    def _model(self) -> AuditCheck:
        name = self.get("nvmlDeviceGetName")
        name = name.decode() if isinstance(name, bytes) else str(name)
        return self.check("model", "pass", f"{name}, {self.memory()} bytes", "informational",
                          why="which models fit, and at what batch size, follows from these")

    def _persistence(self) -> AuditCheck:
        mode = self.get("nvmlDeviceGetPersistenceMode")
        status: Status = "warn" if mode == 0 else "pass"
        shown = {0: "off", 1: "on"}.get(mode, "not supported")
        return self.check("persistence", status, shown, "on",
                          why="without persistence the driver tears the GPU down between "
                          "clients: the first request after idle pays seconds",
                          fix="systemctl enable --now nvidia-persistenced")

    def _ecc(self) -> AuditCheck:
        mode = self.get("nvmlDeviceGetEccMode")
        if mode is None:
            return self.check("ecc", "pass", "not supported", "on where supported",
                              why="ECC turns silent memory corruption into counted errors")
        current, pending = int(mode[0]), int(mode[1])
        status: Status = "warn" if not current or pending != current else "pass"
        value = f"{'on' if current else 'off'}" + (
            f" (pending {'on' if pending else 'off'} at next reset)" if pending != current else "")
        return self.check("ecc", status, value, "on",
                          why="without ECC a flipped bit silently corrupts weights or outputs",
                          fix=f"nvidia-smi -i {self.index} -e 1, then reset the GPU")

    def _mig(self) -> AuditCheck:
        mode = self.get("nvmlDeviceGetMigMode")
        if mode is None or not int(mode[0]):
            return self.check("mig", "pass", "off" if mode is not None else "not supported",
                              "off, or on with instances", why="MIG splits one GPU into slices")
        slots = self.get("nvmlDeviceGetMaxMigDeviceCount") or 0
        instances = sum(self.get("nvmlDeviceGetMigDeviceHandleByIndex", s) is not None
                        for s in range(int(slots)))
        return self.check("mig", "warn" if not instances else "pass",
                          f"on, {instances} instances", "off, or on with instances",
                          why="MIG on without instances leaves the GPU unusable",
                          fix="create instances (nvidia-smi mig -cgi ... -C) or turn MIG off")

    def _pcie(self) -> AuditCheck:
        gen, gen_max = (self.get(f"nvmlDevice{f}PcieLinkGeneration") for f in ("GetCurr", "GetMax"))
        width, width_max = (self.get(f"nvmlDevice{f}PcieLinkWidth") for f in ("GetCurr", "GetMax"))
        if None in (gen, gen_max, width, width_max):
            return self.check("pcie", "pass", "not reported", "max generation and width",
                              why="host-device copies run at the link's speed")
        busy = self.get("nvmlDeviceGetPerformanceState") == 0
        status: Status = "warn" if width < width_max or (gen < gen_max and busy) else "pass"
        value = f"Gen{gen} x{width} of Gen{gen_max} x{width_max}" + (
            "" if gen == gen_max or busy else " (idle: the link downshifts to save power)")
        return self.check("pcie", status, value, "running at max generation and width",
                          why="a degraded link slows every host-device copy: model loads, "
                          "inputs and outputs", fix="reseat the GPU or riser, check the slot's "
                          "lanes and BIOS PCIe settings; re-run under load to confirm")

    def _throttle(self) -> AuditCheck:
        mask = self.get("nvmlDeviceGetCurrentClocksEventReasons") or 0
        active = [n for n, bit in REASONS.items() if mask & bit]
        status: Status = ("fail" if any(n in HARDWARE for n in active) else
                          "warn" if any(n in SOFTWARE for n in active) else "pass")
        return self.check("throttle", status, ", ".join(active) or "none",
                          "no thermal, power or hardware slowdown",
                          why="a throttled GPU serves fewer tokens per second at the same cost",
                          fix="check cooling and airflow, power supply and cables, and the power "
                          "limit (nvidia-smi -q -d PERFORMANCE)")

    def _headroom(self) -> AuditCheck:
        temp = self.get("nvmlDeviceGetTemperature", pynvml.NVML_TEMPERATURE_GPU)
        slowdown = self.get("nvmlDeviceGetTemperatureThreshold",
                            pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
        power, limit = self.get("nvmlDeviceGetPowerUsage"), self.get(
            "nvmlDeviceGetEnforcedPowerLimit")
        hot = temp is not None and slowdown is not None and temp >= slowdown - THERMAL_MARGIN
        near = bool(power is not None and limit and power >= POWER_MARGIN * limit)
        value = (f"{temp} °C (slowdown at {slowdown} °C); {(power or 0) / 1000:.0f} of "
                 f"{(limit or 0) / 1000:.0f} W")
        return self.check("headroom", "warn" if hot or near else "pass", value,
                          f">= {THERMAL_MARGIN} °C below slowdown, < {POWER_MARGIN:.0%} of "
                          "the power limit", why="without headroom the next load spike throttles",
                          fix="improve cooling, or raise the power limit within the GPU's rating")

    def _memory_health(self) -> AuditCheck:
        rows = self.get("nvmlDeviceGetRemappedRows")
        pending_pages = self.get("nvmlDeviceGetRetiredPagesPendingStatus")
        if rows is None and pending_pages is None:
            return self.check("memory_health", "pass", "not reported", "no pending or failed "
                              "row remapping or page retirement", why="degrading GPU memory")
        corr, unc, pending, failure = rows if rows is not None else (0, 0, 0, 0)
        status: Status = ("fail" if failure else
                          "warn" if pending or pending_pages else "pass")
        value = (f"remapped rows: {corr} correctable, {unc} uncorrectable, pending "
                 f"{bool(pending)}, failed {bool(failure)}; pages pending retirement "
                 f"{bool(pending_pages)}")
        return self.check("memory_health", status, value,
                          "no pending or failed row remapping or page retirement",
                          why="a pending remap applies only at reset; a failed one means the "
                          "memory is worn out", fix="reset the GPU (pending) or send it for "
                          "service (failed)")


def xid_history(audit: AuditContext, nvml: Any) -> list[int] | None:
    """XID codes since boot: the fake backend's scenario, else the kernel log (None: unreadable)."""
    if isinstance(getattr(nvml, "data", None), dict):
        return [int(x["xid"]) for x in nvml.data.get("xids", [])]
    try:
        fd = os.open(audit.path("/dev/kmsg"), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return [int(m) for m in XID_LINE.findall(_read_all(fd))]
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    """/dev/kmsg gives one record per read and EAGAIN at the end; a plain file, EOF."""
    chunks, size = [], 0
    while size < KMSG_LIMIT:
        try:
            chunk = os.read(fd, 8192)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # records overwritten while reading: go on
                continue
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _xids(codes: list[int] | None) -> AuditCheck:
    threshold = "no XID errors since boot"
    why = "XIDs are the driver's error reports: a GPU that logged critical ones fails again"
    if codes is None:
        return AuditCheck("gpu.xid", "pass", "kernel log not readable by this user",
                          threshold, why, "run the audit as root to read the kernel log")
    counts = {c: codes.count(c) for c in sorted(set(codes))}
    critical = [c for c in counts if describe(c)[1] is Severity.CRITICAL]
    status: Status = "fail" if critical else "warn" if counts else "pass"
    value = "; ".join(f"XID {c} x{n}: {describe(c)[0]}" for c, n in counts.items()) or "none"
    return AuditCheck("gpu.xid", status, value[:2000], threshold, why,
                      "reset or drain the GPU and follow NVIDIA's XID catalogue for each code"
                      if status != "pass" else "")
