"""The operating system: kernel, the limits the agent's config needs, clock synchronisation."""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator

from agent.audit import AuditCheck, AuditContext, Status

MIN_KERNEL = (5, 4)
TIME_DAEMONS = ("chronyd", "ntpd", "systemd-timesyn", "ptp4l", "phc2sys", "openntpd")
# Descriptors and threads the agent needs: a base, then per enabled plugin; ingest serves
# every model-server connection with a descriptor of its own.
FDS_BASE, FDS_PER_PLUGIN, FDS_INGEST = 256, 32, 4096
THREADS_BASE, THREADS_PER_PLUGIN = 64, 16


def os_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    yield _kernel(ctx.read("/proc/sys/kernel/osrelease") or "")
    yield _nofile(ctx)
    yield _nproc(ctx)
    yield _clock(ctx)


def kernel_version(release: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _kernel(release: str) -> AuditCheck:
    ok = kernel_version(release) >= MIN_KERNEL
    return AuditCheck(
        "os.kernel", "pass" if ok else "warn", release.strip() or "unknown",
        f">= {MIN_KERNEL[0]}.{MIN_KERNEL[1]}",
        "current GPU drivers, cgroup v2 and pressure-stall information need a recent kernel",
        "" if ok else "upgrade to a supported distribution kernel (5.15 LTS or later)")


def needs(ctx: AuditContext) -> tuple[int, int]:
    """(descriptors, threads) the configured agent needs."""
    enabled = [n for n, c in ctx.config.plugins.items() if c.enabled]
    fds = FDS_BASE + FDS_PER_PLUGIN * len(enabled) + (FDS_INGEST if "ingest" in enabled else 0)
    return fds, THREADS_BASE + THREADS_PER_PLUGIN * len(enabled)


def _limit(name: str, soft: int, hard: int, need: int, *, what: str, fix: str) -> AuditCheck:
    def show(v: int) -> str:
        return "unlimited" if v == resource.RLIM_INFINITY else str(v)

    unlimited = resource.RLIM_INFINITY
    status: Status = ("fail" if hard != unlimited and hard < need else
              "warn" if soft != unlimited and soft < need else "pass")
    return AuditCheck(
        name, status, f"soft {show(soft)}, hard {show(hard)}",
        f">= {need} (what the enabled plugins need)", what, "" if status == "pass" else fix)


def _nofile(ctx: AuditContext) -> AuditCheck:
    soft, hard = ctx.probes.rlimit(resource.RLIMIT_NOFILE)
    return _limit("os.nofile", soft, hard, needs(ctx)[0], what=
                  "every model-server connection, scrape, broker link and outbox file takes "
                  "a descriptor; at the limit new connections are refused",
                  fix=f"LimitNOFILE={needs(ctx)[0]} (or more) in the unit; ulimit -n for a shell")


def _nproc(ctx: AuditContext) -> AuditCheck:
    soft, hard = ctx.probes.rlimit(resource.RLIMIT_NPROC)
    return _limit("os.nproc", soft, hard, needs(ctx)[1], what=
                  "each collector runs in a thread of its own; thread creation failing stops "
                  "collection", fix=f"LimitNPROC={needs(ctx)[1]} (or more) in the unit")


def _clock(ctx: AuditContext) -> AuditCheck:
    synced = ctx.probes.clock_synchronised()  # kernel-wide: true for a container's host too
    daemons = sorted(_running(ctx, TIME_DAEMONS))
    if synced is None:
        synced = bool(daemons) or ctx.path("/run/systemd/timesync/synchronized").exists()
    value = f"{'synchronised' if synced else 'not synchronised'}" + (
        f" ({', '.join(daemons)})" if daemons else "")
    return AuditCheck(
        "os.clock", "pass" if synced else "fail", value, "synchronised (NTP or PTP)",
        "events, windows and late labels are joined by timestamp; a drifting clock puts "
        "samples in the wrong window and alerts at the wrong time",
        "" if synced else "install and enable chrony (or systemd-timesyncd)")


def _running(ctx: AuditContext, names: tuple[str, ...]) -> set[str]:
    found = set()
    for comm in ctx.path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text(errors="replace").strip()
        except OSError:
            continue
        if name in names:
            found.add(name)
    return found
