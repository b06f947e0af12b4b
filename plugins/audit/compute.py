"""CPU and memory: what CPU inference runtimes and model loading need from the host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from agent.audit import AuditCheck, AuditContext, Status

GiB = 1 << 30
MIN_CPUS = 4
STEAL_WARN, STEAL_FAIL = 0.02, 0.10
# Instruction sets CPU inference kernels (oneDNN, ONNX Runtime, llama.cpp) dispatch on.
ISA = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


def cpu_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    info = ctx.read("/proc/cpuinfo") or ""
    yield _cores(info)
    yield _isa(info)
    yield _governor(ctx)
    yield _numa(ctx)
    yield _steal(ctx.read("/proc/stat") or "")


def memory_checks(ctx: AuditContext) -> Iterator[AuditCheck]:
    mem = meminfo(ctx.read("/proc/meminfo") or "")
    yield _memory_size(mem, ctx.model_bytes)
    yield _swap(mem, ctx.read("/proc/sys/vm/swappiness"))
    yield _thp(ctx.read("/sys/kernel/mm/transparent_hugepage/enabled"))
    yield _hugepages(mem)


def meminfo(text: str) -> dict[str, int]:
    """`/proc/meminfo` in bytes (its kB are KiB); counts such as HugePages_Total as they are."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def _cpuinfo_field(info: str, key: str) -> str:
    match = re.search(rf"^{key}\s*:\s*(.*)$", info, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _cores(info: str) -> AuditCheck:
    logical = len(re.findall(r"^processor\s*:", info, re.MULTILINE))
    pairs = set(re.findall(r"^physical id\s*:\s*(\d+)$.*?^core id\s*:\s*(\d+)$",
                           info, re.MULTILINE | re.DOTALL))
    model = _cpuinfo_field(info, "model name") or _cpuinfo_field(info, "Model") or "unknown"
    physical = f", {len(pairs)} physical cores" if pairs else ""
    return AuditCheck(
        "cpu.cores", "pass" if logical >= MIN_CPUS else "warn",
        f"{model}: {logical} logical CPUs{physical}", f">= {MIN_CPUS} logical CPUs",
        "pre- and post-processing, tokenisation, batching and the server's own threads run "
        "on the CPU beside the GPU; too few cores starve the accelerator",
        "" if logical >= MIN_CPUS else "a larger instance, or fewer services on this host")


def _isa(info: str) -> AuditCheck:
    flags = set((_cpuinfo_field(info, "flags") or _cpuinfo_field(info, "Features")).split())
    present = [f for f in ISA if f in flags]
    x86 = bool(_cpuinfo_field(info, "flags"))
    ok = not x86 or "avx2" in flags
    return AuditCheck(
        "cpu.isa", "pass" if ok else "warn",
        " ".join(present) or ("none of " + ", ".join(ISA) if x86 else "not x86"),
        "AVX2 at least; AVX-512 VNNI or AMX for int8/bf16 CPU inference",
        "CPU inference kernels fall back to slow generic code without these instruction sets",
        "" if ok else "a CPU generation with AVX-512 VNNI or AMX (Xeon Sapphire Rapids, Zen 4); "
        "on a VM, pass the host CPU model through (e.g. QEMU -cpu host)")


def _governor(ctx: AuditContext) -> AuditCheck:
    base = ctx.path("/sys/devices/system/cpu")
    governors = sorted({_read(g) for g in
                        base.glob("cpu[0-9]*/cpufreq/scaling_governor") if g.is_file()})
    ok = not governors or governors == ["performance"]
    return AuditCheck(
        "cpu.governor", "pass" if ok else "warn",
        ", ".join(governors) or "not exposed (no cpufreq: a VM or a fixed clock)",
        "performance",
        "frequency scaling adds wake-up latency to every request burst",
        "" if ok else "cpupower frequency-set -g performance (and persist it in tuned or a "
        "systemd unit)")


def _numa(ctx: AuditContext) -> AuditCheck:
    nodes = sorted(ctx.path("/sys/devices/system/node").glob("node[0-9]*"))
    layout = [f"{n.name}: cpus {_read(n / 'cpulist')}" for n in nodes]
    return AuditCheck(
        "cpu.numa", "pass", "; ".join(layout) or "1 node (not exposed)", "informational",
        "a model server whose threads and memory sit on another NUMA node than its GPU "
        "pays for every host-device copy across the interconnect",
        "pin the model server to its GPU's node (numactl --cpunodebind, or the server's "
        "own affinity setting)" if len(nodes) > 1 else "")


def _steal(stat: str) -> AuditCheck:
    fields = next((line.split()[1:] for line in stat.splitlines()
                   if line.startswith("cpu ")), [])
    ticks = [int(f) for f in fields if f.isdigit()]
    total = sum(ticks[:8]) if len(ticks) >= 8 else 0
    steal = ticks[7] / total if total else 0.0
    status: Status = "fail" if steal >= STEAL_FAIL else "warn" if steal >= STEAL_WARN else "pass"
    return AuditCheck(
        "cpu.steal", status, round(steal, 4),
        f"< {STEAL_WARN:.0%} of CPU time since boot (fail at {STEAL_FAIL:.0%})",
        "time the hypervisor gave this VM's CPUs to others: it shows up as tail latency",
        "" if status == "pass" else "dedicated or larger instances (no CPU overcommit)")


def _memory_size(mem: dict[str, int], model_bytes: int) -> AuditCheck:
    total = mem.get("MemTotal", 0)
    need = max(2 * model_bytes, 8 * GiB)
    status: Status = "fail" if total < model_bytes else "warn" if total < need else "pass"
    models = f" (2 x the {model_bytes / GiB:.1f} GiB of models configured)" if model_bytes else ""
    return AuditCheck(
        "memory.size", status, total, f">= {need / GiB:.1f} GiB{models}",
        "a model is read into host memory (and page cache) before it reaches the GPU; a "
        "second version loads beside the first during a rollout",
        "" if status == "pass" else "more memory, or fewer or smaller models on this host")


def _swap(mem: dict[str, int], swappiness: str | None) -> AuditCheck:
    total, free = mem.get("SwapTotal", 0), mem.get("SwapFree", 0)
    used = total - free
    status: Status = "warn" if used > max(total // 100, 1 << 20) else "pass"
    return AuditCheck(
        "memory.swap", status,
        f"{used} of {total} bytes used; swappiness {(swappiness or '?').strip()}",
        "no swap in use",
        "a model server whose pages are swapped out answers in seconds instead of ms",
        "" if status == "pass" else "add memory, or set vm.swappiness=1 and find what grew")


def _thp(enabled: str | None) -> AuditCheck:
    mode = re.search(r"\[(\w+)\]", enabled or "")
    value = mode.group(1) if mode else "not exposed"
    status: Status = "warn" if value == "always" else "pass"
    return AuditCheck(
        "memory.thp", status, value, "madvise or never",
        "with `always`, khugepaged compaction stalls allocating threads: latency spikes",
        "" if status == "pass" else
        "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (persist in the kernel "
        "command line: transparent_hugepage=madvise)")


def _hugepages(mem: dict[str, int]) -> AuditCheck:
    pages, free = mem.get("HugePages_Total", 0), mem.get("HugePages_Free", 0)
    size, total = mem.get("Hugepagesize", 2 << 20), mem.get("MemTotal", 0)
    reserved = pages * size
    idle = pages > 0 and free == pages and total and reserved > total // 4
    return AuditCheck(
        "memory.hugepages", "warn" if idle else "pass",
        f"{pages} pages of {size} bytes reserved, {free} free",
        "reserved hugepages in use, or under 25% of memory",
        "memory reserved as hugepages is lost to every program that does not ask for it",
        "reserve fewer (vm.nr_hugepages) unless the model server uses them" if idle else "")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return "?"
