"""Storage under state_dir and the models: free space, filesystem type, a bounded I/O probe.

The probe writes one file in state_dir, fsyncs small writes, drops the file from the page
cache and reads it back; it stops at its time cap whatever it measured. It writes nowhere
else: a state_dir that does not exist yet is the finding, not a reason to probe its parent.
The file's name is unique (PROBE_PREFIX, the pid, a random token); it is removed on every
path out of the probe, and a probe that hung past the audit (a dead NFS server) leaves it
for the next run, which removes the files of probes no longer running before its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.audit import AuditCheck, AuditContext, Status
from plugins.audit import threads

GiB, MiB = 1 << 30, 1 << 20
MIN_FREE = 1 * GiB
WRITE_MBPS, READ_MBPS = 100.0, 200.0  # below these, model loads and outbox bursts crawl
FSYNC_WARN, FSYNC_FAIL = 0.010, 0.100  # seconds: each durable outbox commit pays one
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "9p", "glusterfs", "ceph"}
VOLATILE_FS = {"tmpfs", "ramfs"}
FSYNCS = 20
HANG_GRACE = 1.0  # seconds past the cap before a probe counts as hung (one slow call)
PROBE_PREFIX = ".inferwatch-audit-"  # then "<pid>-<token>" (earlier versions: "<pid>")
STALE_SECONDS = 60.0  # a probe file untouched this long belongs to no running probe


def storage_checks(ctx: AuditContext, probe_bytes: int, probe_seconds: float,
                   model_dir: str | None) -> Iterator[AuditCheck]:
    configured = Path(ctx.config.agent.state_dir)
    state = existing(configured)  # read only: free space and filesystem where it will be
    free = _free(ctx, state)
    yield _state_free(ctx, state, free)
    if model_dir is not None:
        yield _models_free(ctx, existing(ctx.path(model_dir)))
    yield _fstype(ctx, state)
    if not configured.is_dir():
        yield _probe_missing(configured)
        return
    yield from _probe(configured, free, probe_bytes, probe_seconds)


def existing(path: Path) -> Path:
    """The path, or its nearest existing parent (state_dir may not exist before the agent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def outbox_budget(ctx: AuditContext) -> int:
    """Bytes the enabled plugins' outboxes may take (every `outbox_max_bytes` key)."""
    return sum(int(getattr(c, "outbox_max_bytes", 0) or 0)
               for c in ctx.config.plugins.values() if c.enabled)


def _free(ctx: AuditContext, path: Path) -> int:
    st = ctx.probes.statvfs(str(path))
    return int(st.f_bavail * st.f_frsize)


def _state_free(ctx: AuditContext, state: Path, free: int) -> AuditCheck:
    need = MIN_FREE + outbox_budget(ctx)
    status: Status = "fail" if free < need // 4 else "warn" if free < need else "pass"
    return AuditCheck(
        "storage.state_free", status, free,
        f">= {need / GiB:.1f} GiB free at {state} (1 GiB + the outbox limits)",
        "the outbox holds every event while a broker is away; a full state_dir loses them "
        "and stops checkpoints", "" if status == "pass" else
        f"free space on {state}'s filesystem, or lower outbox_max_bytes")


def _models_free(ctx: AuditContext, where: Path) -> AuditCheck:
    free, need = _free(ctx, where), ctx.model_bytes
    status: Status = "pass" if free >= need else "warn"
    return AuditCheck(
        "storage.models_free", status, free, f">= {need / GiB:.1f} GiB free beside the models",
        "a new model version is downloaded beside the serving one before the switch",
        "" if status == "pass" else f"free or grow {where}'s filesystem")


def mount_of(ctx: AuditContext, path: Path) -> tuple[str, str]:
    """(mount point, filesystem type) of the longest mount prefix of `path`."""
    best = ("/", "unknown")
    for line in (ctx.read("/proc/self/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def _fstype(ctx: AuditContext, state: Path) -> AuditCheck:
    point, fstype = mount_of(ctx, state)
    status: Status = "fail" if fstype in NETWORK_FS else "warn" if fstype in VOLATILE_FS else "pass"
    fix = {"fail": "a local filesystem for state_dir (ext4 or xfs)",
           "warn": "a persistent filesystem for state_dir (StateDirectory= under /var/lib)"}
    return AuditCheck(
        "storage.state_fstype", status, f"{fstype} at {point}", "a local, persistent filesystem",
        "SQLite's write-ahead log is unsafe on network filesystems, and a tmpfs outbox "
        "loses undelivered events at reboot", fix.get(status, ""))


def _probe(state: Path, free: int, size: int, cap: float) -> Iterator[AuditCheck]:
    if free < 2 * size:
        yield _probe_failed(f"not run: only {free} bytes free (needs {2 * size})")
        return
    path = state / f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    # A daemon thread: a hung filesystem can hold neither the audit nor the process's exit.
    future = threads.submit("storage", _measure, path, size, time.monotonic() + cap)
    try:
        write, fsync, read = future.result(timeout=cap + HANG_GRACE)
    except TimeoutError:
        yield _probe_failed(f"no answer from {state}'s filesystem within {cap + HANG_GRACE:g}s")
        return
    except OSError as exc:
        yield _probe_failed(f"{exc.strerror or exc} writing {path}")
        return
    yield _rate("storage.write", write, WRITE_MBPS, "sequential write (fsynced)")
    yield _rate("storage.read", read, READ_MBPS, "sequential read (page cache dropped)")
    status: Status = "fail" if fsync > FSYNC_FAIL else "warn" if fsync > FSYNC_WARN else "pass"
    yield AuditCheck(
        "storage.fsync", status, round(fsync, 6),
        f"median <= {FSYNC_WARN * 1000:.0f} ms (fail above {FSYNC_FAIL * 1000:.0f} ms)",
        "every durable outbox commit waits for one fsync: it bounds events per second",
        "" if status == "pass" else "a local SSD for state_dir, or outbox_sync = \"normal\"")


def _probe_missing(state: Path) -> AuditCheck:
    return AuditCheck(
        "storage.probe", "warn", f"not run: state_dir {state} does not exist",
        "a write, fsync and read in state_dir (nothing is written anywhere else)",
        "the outbox and checkpoints live there; their speed is measured only where they will be",
        f"create {state} for the agent's user (systemd: StateDirectory=), or start the agent "
        "once, and audit again")


def _probe_failed(value: str) -> AuditCheck:
    return AuditCheck("storage.probe", "fail", value, "a write, fsync and read in state_dir",
                      "the agent cannot keep its outbox or checkpoints where it cannot write",
                      "free space in, or fix the permissions of, state_dir")


def _rate(name: str, mbps: float | None, floor: float, what: str) -> AuditCheck:
    status: Status = "pass" if mbps is None or mbps >= floor else "warn"
    value = "not measured (time cap reached)" if mbps is None else round(mbps, 1)
    return AuditCheck(name, status, value, f">= {floor:g} MB/s, {what}",
                      "models load from here and the outbox drains through here",
                      "" if status == "pass" else "a local NVMe SSD for models and state")


def _measure(path: Path, size: int, deadline: float) -> tuple[float | None, float, float | None]:
    """(write MB/s, median fsync seconds, read MB/s); None where the deadline came first.

    The file is removed here, in the probing thread, on every path (even when the audit
    stopped waiting, or closing it failed); first, the files of earlier probes that are no
    longer running.
    """
    remove_stale(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        try:
            fsync = _fsyncs(fd, deadline)
            write = _timed(lambda: _write(fd, size, deadline), size)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            read = _timed(lambda: _read(fd, size, deadline), size)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return write, fsync, read


def remove_stale(folder: Path) -> int:
    """Remove the probe files in `folder` that no running probe owns: their process is gone,
    or nothing touched them for STALE_SECONDS (a probe of this process that hung); a
    concurrent audit's fresh file stays. Returns how many went."""
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(PROBE_PREFIX) and _stale(entry):
                with contextlib.suppress(OSError):
                    Path(entry.path).unlink()
                    removed += 1
    return removed


def _stale(entry: os.DirEntry[str]) -> bool:
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        age = time.time() - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    owner = entry.name.removeprefix(PROBE_PREFIX).split("-", 1)[0]
    return age > STALE_SECONDS or (owner.isdigit() and not _running(int(owner)))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a name that is no pid: leave it be
    return True


def _fsyncs(fd: int, deadline: float) -> float:
    times = []
    for _ in range(FSYNCS):
        began = time.monotonic()
        os.write(fd, b"x" * 512)
        os.fsync(fd)
        times.append(time.monotonic() - began)
        if time.monotonic() > deadline:
            break
    return sorted(times)[len(times) // 2]


def _timed(step: Callable[[], bool], size: int) -> float | None:
    began = time.monotonic()
    done = step()
    elapsed = time.monotonic() - began
    return size / elapsed / 1e6 if done and elapsed > 0 else None


def _write(fd: int, size: int, deadline: float) -> bool:
    os.lseek(fd, 0, os.SEEK_SET)
    block = os.urandom(MiB)
    for _ in range(size // MiB):
        os.write(fd, block)
        if time.monotonic() > deadline:
            return False
    os.fsync(fd)
    return True


def _read(fd: int, size: int, deadline: float) -> bool:
    os.lseek(fd, 0, os.SEEK_SET)
    while size > 0 and (chunk := os.read(fd, MiB)):
        size -= len(chunk)
        if time.monotonic() > deadline:
            return False
    return True
