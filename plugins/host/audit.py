"""Integration checks for `inferwatch audit`: are the configured model servers running?

Matching reads `/proc/<pid>/comm` and `cmdline`, pid files and cgroups under the audited
root, so a container with the host's /proc at /host sees the host's processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from agent.audit import AuditCheck, AuditContext
from plugins.host.config import HostConfig, ProcessMatch

WHY = "the model's telemetry, and the samples it sends, exist only while its server runs"


def model_server_checks(config: HostConfig, audit: AuditContext) -> Iterator[AuditCheck]:
    if not config.processes:
        yield AuditCheck(
            "integration.model_server", "warn", "none configured",
            "the model server's processes watched ([[plugins.host.processes]])", WHY,
            "add [[plugins.host.processes]] with the server's systemd_unit, process_name, "
            "cmdline or pidfile")
        return
    scanned = _scan(audit) if any(p.process_name or p.cmdline for p in config.processes) else []
    for match in config.processes:
        pids = _find(audit, match, scanned)
        yield AuditCheck(
            f"integration.model_server.{match.name}", "pass" if pids else "fail",
            f"{len(pids)} processes" + (f" (pids {', '.join(map(str, pids[:5]))})" if pids
                                        else f" match {_rule(match)}"),
            ">= 1 process", WHY,
            "" if pids else "start the model server, or correct the match in "
            f"[[plugins.host.processes]] name = {match.name!r}")


def _rule(match: ProcessMatch) -> str:
    for key in ("process_name", "cmdline", "pidfile", "systemd_unit"):
        if (value := getattr(match, key)) is not None:
            return f"{key} = {value!r}"
    return "nothing"


def _scan(audit: AuditContext) -> list[tuple[int, str, str]]:
    found = []
    for proc in audit.path("/proc").glob("[0-9]*"):
        try:
            comm = (proc / "comm").read_text(errors="replace").strip()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except OSError:
            continue
        found.append((int(proc.name), comm, cmdline))
    return sorted(found)


def _find(audit: AuditContext, match: ProcessMatch,
          scanned: list[tuple[int, str, str]]) -> list[int]:
    if match.process_name is not None:
        return [pid for pid, comm, _ in scanned if comm == match.process_name[:15]]
    if match.cmdline is not None:
        pattern = re.compile(match.cmdline)
        return [pid for pid, _, cmdline in scanned if pattern.search(cmdline)]
    if match.pidfile is not None:
        pids = _ints(audit.path(match.pidfile))
        return [p for p in pids if audit.path(f"/proc/{p}").exists()]
    unit = match.systemd_unit or ""
    name = unit if "." in unit else f"{unit}.service"
    for cgroup in ("/sys/fs/cgroup", "/sys/fs/cgroup/systemd"):
        if pids := _ints(audit.path(f"{cgroup}/system.slice/{name}/cgroup.procs")):
            return pids
    return []


def _ints(path: Path) -> list[int]:
    try:
        return [int(word) for word in path.read_text(errors="replace").split()]
    except (OSError, ValueError):
        return []
