"""Host collectors, one per area, so a failing sensor read never hides memory or disk metrics.

All are blocking (psutil, statvfs, /proc reads) and run in their own worker thread.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import structlog

from agent.components import Collector
from agent.metrics import Accumulator
from plugins.host import metrics as m
from plugins.host.config import HostConfig

if TYPE_CHECKING:
    from psutil._ntuples import sdiskpart

PROC = Path("/proc")
log = structlog.get_logger("inferwatch")


class Exclusion:
    """An `*_exclude` regex that says once (a warning) when it drops everything it sees.

    A placeholder filled in literally (`disk_exclude = "..."` matches any name) would
    otherwise remove every series without a word.
    """

    def __init__(self, key: str, pattern: str) -> None:
        self.key, self.regex = key, re.compile(pattern)
        self.seen = self.dropped = 0
        self.warned = False

    def excludes(self, name: str) -> bool:
        self.seen += 1
        dropped = self.regex.search(name) is not None
        self.dropped += dropped
        return dropped

    def settle(self) -> None:
        """After a collection: warn the first time every one of several names was dropped."""
        if self.seen and self.dropped == self.seen and not self.warned:
            self.warned = True
            log.warning("an exclude pattern drops everything", key=f"plugins.host.{self.key}",
                        pattern=self.regex.pattern, names_seen=self.seen)
        self.seen = self.dropped = 0


class CpuCollector(Collector):
    def __init__(self) -> None:
        super().__init__("cpu")

    def collect(self, out: Accumulator) -> None:
        for mode, seconds in psutil.cpu_times()._asdict().items():
            out.add(m.CPU_SECONDS, seconds, mode=mode)
        out.add(m.CPUS, psutil.cpu_count() or 0)
        for metric, value in zip((m.LOAD1, m.LOAD5, m.LOAD15), os.getloadavg(), strict=True):
            out.add(metric, value)
        stats = psutil.cpu_stats()
        out.add(m.CTX_SWITCHES, stats.ctx_switches)
        out.add(m.INTERRUPTS, stats.interrupts)
        for resource in ("cpu", "memory", "io"):
            if (stalled := _pressure_some_seconds(PROC / "pressure" / resource)) is not None:
                out.add(m.PRESSURE, stalled, resource=resource)


def _pressure_some_seconds(path: Path) -> float | None:
    """`some ... total=<usec>` from a PSI file; None where the kernel has no PSI."""
    try:
        first = path.read_text().split("\n", 1)[0]
    except OSError:
        return None
    match = re.search(r"total=(\d+)", first)
    return int(match.group(1)) / 1e6 if match and first.startswith("some") else None


class MemoryCollector(Collector):
    def __init__(self) -> None:
        super().__init__("memory")

    def collect(self, out: Accumulator) -> None:
        vm = psutil.virtual_memory()
        out.add(m.MEM_TOTAL, vm.total)
        out.add(m.MEM_AVAILABLE, vm.available)
        out.add(m.MEM_USED, vm.total - vm.available)
        out.add(m.MEM_CACHED, getattr(vm, "cached", 0))
        out.add(m.MEM_BUFFERS, getattr(vm, "buffers", 0))
        swap = psutil.swap_memory()
        out.add(m.SWAP_TOTAL, swap.total)
        out.add(m.SWAP_USED, swap.used)
        out.add(m.SWAP_IN, swap.sin)
        out.add(m.SWAP_OUT, swap.sout)


class FilesystemCollector(Collector):
    """Real mounts only; a device mounted twice (bind mounts) is reported once."""

    def __init__(self, config: HostConfig) -> None:
        super().__init__("filesystem")
        self._types = frozenset(config.filesystem_exclude_types)
        self._exclude = Exclusion("mountpoint_exclude", config.mountpoint_exclude)

    def mounts(self) -> list[sdiskpart]:
        seen: dict[str, sdiskpart] = {}
        for part in sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint)):
            if part.fstype in self._types or self._exclude.excludes(part.mountpoint):
                continue
            seen.setdefault(part.device, part)
        self._exclude.settle()
        return list(seen.values())

    def collect(self, out: Accumulator) -> None:
        for part in self.mounts():
            try:
                st = os.statvfs(part.mountpoint)
            except OSError:
                continue  # unmounted between listing and stat, or no permission
            labels = {"mountpoint": part.mountpoint, "device": part.device,
                      "fstype": part.fstype}
            out.add(m.FS_SIZE, st.f_blocks * st.f_frsize, **labels)
            out.add(m.FS_FREE, st.f_bfree * st.f_frsize, **labels)
            out.add(m.FS_AVAIL, st.f_bavail * st.f_frsize, **labels)
            out.add(m.FS_FILES, st.f_files, **labels)
            out.add(m.FS_FILES_FREE, st.f_ffree, **labels)
            out.add(m.FS_READONLY, 1 if st.f_flag & os.ST_RDONLY else 0, **labels)


class DiskIOCollector(Collector):
    def __init__(self, config: HostConfig) -> None:
        super().__init__("diskio")
        self._exclude = Exclusion("disk_exclude", config.disk_exclude)

    def collect(self, out: Accumulator) -> None:
        for device, io in (psutil.disk_io_counters(perdisk=True, nowrap=True) or {}).items():
            if self._exclude.excludes(device):
                continue
            out.add(m.DISK_READ_BYTES, io.read_bytes, device=device)
            out.add(m.DISK_WRITTEN_BYTES, io.write_bytes, device=device)
            out.add(m.DISK_READS, io.read_count, device=device)
            out.add(m.DISK_WRITES, io.write_count, device=device)
            out.add(m.DISK_READ_TIME, io.read_time / 1000, device=device)
            out.add(m.DISK_WRITE_TIME, io.write_time / 1000, device=device)
            if (busy := getattr(io, "busy_time", None)) is not None:
                out.add(m.DISK_IO_TIME, busy / 1000, device=device)
        self._exclude.settle()


class NetworkCollector(Collector):
    def __init__(self, config: HostConfig) -> None:
        super().__init__("network")
        self._exclude = Exclusion("network_exclude", config.network_exclude)

    def collect(self, out: Accumulator) -> None:
        stats = psutil.net_if_stats()
        for name, io in psutil.net_io_counters(pernic=True, nowrap=True).items():
            if self._exclude.excludes(name):
                continue
            out.add(m.NET_RX_BYTES, io.bytes_recv, interface=name)
            out.add(m.NET_TX_BYTES, io.bytes_sent, interface=name)
            out.add(m.NET_RX_PACKETS, io.packets_recv, interface=name)
            out.add(m.NET_TX_PACKETS, io.packets_sent, interface=name)
            out.add(m.NET_RX_ERRS, io.errin, interface=name)
            out.add(m.NET_TX_ERRS, io.errout, interface=name)
            out.add(m.NET_RX_DROP, io.dropin, interface=name)
            out.add(m.NET_TX_DROP, io.dropout, interface=name)
            if (st := stats.get(name)) is not None:
                out.add(m.NET_UP, 1 if st.isup else 0, interface=name)
                if st.speed > 0:
                    out.add(m.NET_SPEED, st.speed * 125_000, interface=name)
        self._exclude.settle()


class SystemCollector(Collector):
    def __init__(self) -> None:
        super().__init__("system")

    def collect(self, out: Accumulator) -> None:
        allocated, _, maximum = (PROC / "sys/fs/file-nr").read_text().split()
        out.add(m.FDS_ALLOCATED, int(allocated))
        out.add(m.FDS_MAXIMUM, int(maximum))
        out.add(m.BOOT_TIME, psutil.boot_time())


class TemperatureCollector(Collector):
    def __init__(self) -> None:
        super().__init__("temperature")

    def collect(self, out: Accumulator) -> None:
        for chip, sensors in psutil.sensors_temperatures().items():
            for index, sensor in enumerate(sensors):
                labels = {"chip": chip, "sensor": sensor.label or str(index)}
                out.add(m.TEMPERATURE, sensor.current, **labels)
                if sensor.high:
                    out.add(m.TEMPERATURE_HIGH, sensor.high, **labels)
                if sensor.critical:
                    out.add(m.TEMPERATURE_CRIT, sensor.critical, **labels)
