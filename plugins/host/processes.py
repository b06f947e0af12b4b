"""Watched inference-server processes, matched by name, command line, pid file or systemd unit.

Series are labelled by the configured group name only, never by pid, so they stay bounded
across restarts of the watched server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import psutil

from agent.components import Collector
from agent.metrics import Accumulator
from plugins.host import metrics as m
from plugins.host.config import ProcessMatch

CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/systemd"))


class ProcessCollector(Collector):
    def __init__(self, matches: list[ProcessMatch]) -> None:
        super().__init__("processes")
        self._matches = matches
        self._patterns = {p.name: re.compile(p.cmdline) for p in matches if p.cmdline}

    def collect(self, out: Accumulator) -> None:
        scanned = self._scan() if any(p.process_name or p.cmdline for p in self._matches) else []
        for match in self._matches:
            procs = list(self._find(match, scanned))
            _report(out, match.name, procs)

    def _scan(self) -> list[psutil.Process]:
        return list(psutil.process_iter(["name", "cmdline"]))

    def _find(self, match: ProcessMatch, scanned: list[psutil.Process]) -> Iterable[psutil.Process]:
        if match.process_name is not None:
            return (p for p in scanned if p.info["name"] == match.process_name)
        if match.cmdline is not None:
            pattern = self._patterns[match.name]
            return (p for p in scanned if pattern.search(" ".join(p.info["cmdline"] or ())))
        pids = _pidfile(match.pidfile) if match.pidfile else _unit_pids(match.systemd_unit or "")
        return _processes(pids)


def _report(out: Accumulator, name: str, procs: list[psutil.Process]) -> None:
    user = system = rss = threads = fds = 0.0
    alive = 0
    for proc in procs:
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                rss_now, threads_now = proc.memory_info().rss, proc.num_threads()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        fds_now = _num_fds(proc)
        alive += 1
        user, system = user + cpu.user, system + cpu.system
        rss, threads, fds = rss + rss_now, threads + threads_now, fds + fds_now
    out.add(m.PROC_UP, 1 if alive else 0, process=name)
    out.add(m.PROC_COUNT, alive, process=name)
    if alive:
        out.add(m.PROC_CPU, user, process=name, mode="user")
        out.add(m.PROC_CPU, system, process=name, mode="system")
        out.add(m.PROC_RSS, rss, process=name)
        out.add(m.PROC_THREADS, threads, process=name)
        out.add(m.PROC_FDS, fds, process=name)


def _num_fds(proc: psutil.Process) -> int:
    """Another user's fd table needs CAP_SYS_PTRACE; without it count 0, keep the rest."""
    try:
        return proc.num_fds()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0


def _pidfile(path: str) -> list[int]:
    try:
        return [int(Path(path).read_text().split()[0])]
    except (OSError, ValueError, IndexError):
        return []


def _unit_pids(unit: str) -> list[int]:
    """Every process in the unit's cgroup (workers included), cgroup v2 first, then v1."""
    name = unit if "." in unit else f"{unit}.service"
    for root in CGROUP_ROOTS:
        procs = root / "system.slice" / name / "cgroup.procs"
        try:
            return [int(line) for line in procs.read_text().split()]
        except (OSError, ValueError):
            continue
    return []


def _processes(pids: list[int]) -> Iterable[psutil.Process]:
    for pid in pids:
        try:
            yield psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
