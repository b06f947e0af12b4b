"""The /proc and /sys parsers never raise on what a strange kernel (or a broken file) holds."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.audit import AuditContext
from agent.config import build_config
from plugins.audit.compute import cpu_checks, meminfo, memory_checks
from plugins.audit.system import kernel_version
from plugins.nvidia.audit import XID_LINE

TEXT = st.text(st.characters(codec="utf-8"), max_size=400)
LINES = st.lists(st.sampled_from(["processor\t: 0", "flags\t\t: avx2 avx512f", "cpu  1 2 3",
                                  "MemTotal:  16 kB", "physical id\t: 0", "core id\t\t: 3",
                                  "HugePages_Total: x", "SwapTotal: -5 kB", ":", ""]) | TEXT,
                 max_size=12).map("\n".join)


@given(LINES)
def test_meminfo_takes_anything(text: str) -> None:
    values = meminfo(text)
    assert all(isinstance(v, int) and v >= 0 for v in values.values())


@given(TEXT)
def test_kernel_version_takes_anything(text: str) -> None:
    major, minor = kernel_version(text)
    assert major >= 0
    assert minor >= 0


def test_kernel_versions() -> None:
    assert kernel_version("6.1.0-18-amd64\n") == (6, 1)
    assert kernel_version("4.15.0") == (4, 15)
    assert kernel_version("garbage") == (0, 0)


@given(cpuinfo=LINES, stat=LINES, mem=LINES)
def test_cpu_and_memory_checks_survive_any_proc_text(cpuinfo: str, stat: str, mem: str,
                                                    tmp_path_factory: object) -> None:
    root = Path(str(tmp_path_factory.mktemp("proc")))  # type: ignore[attr-defined]
    (root / "proc").mkdir()
    (root / "proc" / "cpuinfo").write_text(cpuinfo)
    (root / "proc" / "stat").write_text(stat)
    (root / "proc" / "meminfo").write_text(mem)
    ctx = AuditContext(config=build_config({}, {}), root=root)
    checks = [*cpu_checks(ctx), *memory_checks(ctx)]
    assert {c.status for c in checks} <= {"pass", "warn", "fail"}


@given(st.binary(max_size=300))
def test_xid_lines_take_any_bytes(data: bytes) -> None:
    for code in XID_LINE.findall(data + b"NVRM: Xid (PCI:0000:01:00): 79, pid=1"):
        assert int(code) >= 0
