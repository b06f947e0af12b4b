"""Fake probes and contexts for the audit tests: fixture trees instead of the real host."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path
from typing import Any

from agent.audit import AuditCheck, AuditContext, Probes
from agent.config import build_config
from plugins.audit.config import AuditConfig
from tests.helpers import FIXTURES

TREES = FIXTURES / "audit"
GiB = 1 << 30


class FakeProbes(Probes):
    """The system calls without a file form, answering what the test sets."""

    def __init__(self, *, free: int = 500 * GiB, nofile: tuple[int, int] = (65536, 65536),
                 nproc: tuple[int, int] = (4096, 4096), synced: bool | None = True,
                 rtt: dict[tuple[str, int], float | OSError] | None = None) -> None:
        self.free, self.synced, self.rtt = free, synced, rtt or {}
        self.release = threading.Event()
        self.limits = {resource.RLIMIT_NOFILE: nofile, resource.RLIMIT_NPROC: nproc}

    def statvfs(self, path: str) -> os.statvfs_result:
        blocks = 1000 * GiB // 4096
        return os.statvfs_result((4096, 4096, blocks, self.free // 4096, self.free // 4096,
                                  10**6, 10**6, 10**6, 0, 255))

    def rlimit(self, which: int) -> tuple[int, int]:
        return self.limits[which]

    def clock_synchronised(self) -> bool | None:
        return self.synced

    def connect(self, host: str, port: int, timeout: float) -> float:
        if host == "hangs.example":  # a resolver that never answers
            self.release.wait(10)
        answer = self.rtt.get((host, port), ConnectionRefusedError(111, "Connection refused"))
        if isinstance(answer, OSError):
            raise answer
        return answer


def make_context(tree: str, tmp_path: Path, plugins: dict[str, Any] | None = None,
                 models: dict[str, type] | None = None, **kwargs: Any) -> AuditContext:
    raw = {"agent": {"state_dir": str(tmp_path / "state")}, "plugins": plugins or {}}
    config = build_config(raw, {"audit": AuditConfig, **(models or {})})
    return AuditContext(config=config, root=TREES / tree, **kwargs)


def by_name(checks: list[AuditCheck]) -> dict[str, AuditCheck]:
    return {c.name: c for c in checks}
