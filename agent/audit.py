"""What a readiness check is, and what every check may read: the types plugins share.

A check reads the host and changes nothing. It reads `/proc`, `/sys` and `/etc` under
`AuditContext.root` (so tests and containers can point it at another tree) and reaches
system calls that have no file form through `AuditContext.probes`, which tests replace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from agent.config import Config

Status = Literal["pass", "warn", "fail"]
Value = str | int | float | bool | None
RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """One finding: the measured value against its threshold, why it matters, what to do."""

    name: str  # dotted and stable (`gpu0.pcie`): the `check` label of the audit metric
    status: Status
    value: Value
    threshold: str
    why: str
    fix: str = ""

    def as_dict(self) -> dict[str, Value]:
        return {"name": self.name, "status": self.status, "value": self.value,
                "threshold": self.threshold, "why": self.why, "fix": self.fix}


class Probes:
    """System calls without a file under /proc or /sys; tests pass a subclass."""

    def statvfs(self, path: str) -> os.statvfs_result:
        return os.statvfs(path)

    def rlimit(self, which: int) -> tuple[int, int]:
        return resource.getrlimit(which)

    def clock_synchronised(self) -> bool | None:
        """adjtimex(2) read-only (modes 0, no privilege needed); None where unavailable."""
        libc_name = ctypes.util.find_library("c")
        if libc_name is None:
            return None
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if not hasattr(libc, "adjtimex"):
            return None
        timex = ctypes.create_string_buffer(512)  # struct timex is 208 bytes; modes = 0
        state = libc.adjtimex(timex)
        return None if state < 0 else state != TIME_ERROR

    def connect(self, host: str, port: int, timeout: float) -> float:
        """Seconds a TCP connection took to open; raises OSError when it does not."""
        began = time.monotonic()
        with socket.create_connection((host, port), timeout=timeout):
            return time.monotonic() - began


@dataclass
class AuditContext:
    """What every check may read; `model_bytes` is the size of the models this host serves."""

    config: Config
    root: Path = Path("/")
    probes: Probes = field(default_factory=Probes)
    model_bytes: int = 0
    model_server_user: str = ""  # the user whose processes send samples to the agent
    timeout: float = 5.0  # for each probe that waits (a connection, a storage probe)

    def path(self, absolute: str) -> Path:
        """`/proc/meminfo` under the audited root."""
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        """A small text file under the root, or None when absent or unreadable."""
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
