"""The host plugin against the machine itself: /proc, statvfs and real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import build_config
from agent.errors import ConfigError
from agent.metrics import Accumulator, MetricDef
from plugins.host import collectors, processes
from plugins.host import metrics as m
from plugins.host.config import HostConfig

Series = dict[tuple[str, ...], float]


def _config(**raw: object) -> HostConfig:
    config = build_config({"plugins": {"host": raw}}, {"host": HostConfig}).plugins["host"]
    assert isinstance(config, HostConfig)
    return config


def _collect(collector: collectors.Collector) -> dict[MetricDef, Series]:
    acc = Accumulator()
    collector.collect(acc)
    return acc.series


def test_cpu_and_memory_match_proc() -> None:
    cpu = _collect(collectors.CpuCollector())
    assert cpu[m.CPUS][()] == os.cpu_count()
    assert {"user", "system", "idle", "iowait"} <= {k[0] for k in cpu[m.CPU_SECONDS]}
    assert cpu[m.LOAD1][()] >= 0
    memory = _collect(collectors.MemoryCollector())
    meminfo = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    assert memory[m.MEM_TOTAL][()] == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < memory[m.MEM_AVAILABLE][()] <= memory[m.MEM_TOTAL][()]


def test_filesystems_are_real_mounts_only() -> None:
    series = _collect(collectors.FilesystemCollector(_config()))[m.FS_SIZE]
    mounts = {labels[0]: labels[2] for labels in series}
    assert "/" in mounts
    assert not {"proc", "sysfs", "tmpfs", "cgroup2", "devpts"} & set(mounts.values())
    root = os.statvfs("/")
    (size,) = [v for k, v in series.items() if k[0] == "/"]
    assert size == root.f_blocks * root.f_frsize
    assert len({k[1] for k in series}) == len(series), "a device is reported once"


def test_network_excludes_loopback_by_default() -> None:
    default = _collect(collectors.NetworkCollector(_config()))[m.NET_RX_BYTES]
    assert ("lo",) not in default
    # Read before collecting: other processes' loopback traffic only makes the counter grow.
    rx = Path("/proc/net/dev").read_text().split("lo:")[1].split()[0]
    everything = _collect(collectors.NetworkCollector(_config(network_exclude="^$")))
    assert ("lo",) in everything[m.NET_RX_BYTES]
    assert everything[m.NET_RX_BYTES][("lo",)] >= int(rx)


def test_disks_skip_partitions_and_loops() -> None:
    series = _collect(collectors.DiskIOCollector(_config())).get(m.DISK_READ_BYTES, {})
    for (device,) in series:
        assert not device.startswith(("loop", "ram")), device


def test_system_file_descriptors() -> None:
    series = _collect(collectors.SystemCollector())
    _, _, maximum = Path("/proc/sys/fs/file-nr").read_text().split()
    assert series[m.FDS_MAXIMUM][()] == int(maximum)
    assert series[m.FDS_ALLOCATED][()] > 0


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    tag = f"iw-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", tag])
    yield proc, tag
    proc.kill()
    proc.wait()


def _watch(**match: str) -> dict[MetricDef, Series]:
    config = _config(processes=[{"name": "model", **match}])
    return _collect(processes.ProcessCollector(config.processes))


def test_process_by_cmdline_then_gone(sleeper: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, tag = sleeper
    series = _watch(cmdline=tag)
    assert series[m.PROC_UP][("model",)] == 1
    assert series[m.PROC_COUNT][("model",)] == 1
    assert series[m.PROC_RSS][("model",)] > 1_000_000
    assert series[m.PROC_THREADS][("model",)] >= 1
    assert series[m.PROC_FDS][("model",)] >= 3
    proc.kill()
    proc.wait()
    gone = _watch(cmdline=tag)
    assert gone[m.PROC_UP][("model",)] == 0
    assert m.PROC_RSS not in gone, "no stale per-process series"


def test_process_by_pidfile_and_unit(sleeper: tuple[subprocess.Popen[bytes], str],
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, _ = sleeper
    (tmp_path / "model.pid").write_text(f"{proc.pid}\n")
    assert _watch(pidfile=str(tmp_path / "model.pid"))[m.PROC_COUNT][("model",)] == 1
    assert _watch(pidfile=str(tmp_path / "absent.pid"))[m.PROC_UP][("model",)] == 0
    unit = tmp_path / "cgroup" / "system.slice" / "triton.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.procs").write_text(f"{proc.pid}\n{os.getpid()}\n")
    monkeypatch.setattr(processes, "CGROUP_ROOTS", (tmp_path / "cgroup",))
    assert _watch(systemd_unit="triton")[m.PROC_COUNT][("model",)] == 2


def test_process_match_needs_exactly_one_matcher() -> None:
    with pytest.raises(ConfigError) as info:
        _config(processes=[{"name": "a"}, {"name": "b", "pidfile": "/x", "cmdline": "y"},
                           {"name": "bad name!", "pidfile": "/x"}, {"name": "c", "cmdline": "("}])
    problems = "\n".join(info.value.problems)
    assert "plugins.host.processes[0].name: set exactly one of" in problems
    assert "processes[1].name: set exactly one of" in problems
    assert "processes[2].name: Expected `str` matching regex" in problems
    assert "processes[3].cmdline: invalid regular expression" in problems


def test_a_pattern_that_drops_every_name_is_said_once() -> None:
    from structlog.testing import capture_logs  # noqa: PLC0415

    everything = collectors.NetworkCollector(_config(network_exclude="."))  # any name
    with capture_logs() as logs:
        assert _collect(everything).get(m.NET_RX_BYTES, {}) == {}
        _collect(everything)
    warnings = [e for e in logs if e["event"] == "an exclude pattern drops everything"]
    assert len(warnings) == 1, logs
    assert warnings[0]["key"] == "plugins.host.network_exclude"
    assert warnings[0]["pattern"] == "."
    with capture_logs() as logs:
        _collect(collectors.NetworkCollector(_config()))  # the default keeps some
    assert logs == []
