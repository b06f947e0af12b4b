"""`inferwatch audit`'s GPU checks through real NVML. Skipped where no NVIDIA driver answers.

Not run during development (no GPU was lent to this task): the same checks are proven on the
faithful fake in tests/plugins/test_audit_plugins.py.
"""

from __future__ import annotations

from pathlib import Path

import pynvml

from agent.audit import AuditContext
from agent.config import build_config
from plugins.nvidia.audit import gpu_checks
from plugins.nvidia.config import NvidiaConfig
from tests.gpu.driver import REAL_GPU

pytestmark = REAL_GPU


def test_every_gpu_is_audited_with_plausible_values(tmp_path: Path) -> None:
    ctx = AuditContext(config=build_config({"agent": {"state_dir": str(tmp_path)}}, {}))
    checks = {c.name: c for c in gpu_checks(NvidiaConfig(enabled=True), ctx, pynvml)}
    count = _count()
    assert checks["gpu.driver"].value.endswith(f", {count} GPUs")
    for index in range(count):
        for name in ("model", "persistence", "ecc", "mig", "pcie", "throttle", "headroom",
                     "memory_health"):
            check = checks[f"gpu{index}.{name}"]
            assert check.status in {"pass", "warn", "fail"}, check
        assert int(str(checks[f"gpu{index}.model"].value).rsplit(", ", 1)[1].split()[0]) > 1 << 30
        assert str(checks[f"gpu{index}.pcie"].value).startswith("Gen")
    assert "gpu.xid" in checks


def _count() -> int:
    pynvml.nvmlInit()
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()
