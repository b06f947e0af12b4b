"""Checks other plugins add through the hook (GPU, model server, ingest socket), the runner
that contains a misbehaving plugin, and the three output formats."""

from __future__ import annotations

import getpass
import grp
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.loader import discover
from plugins.audit.config import AuditConfig
from plugins.audit.render import render
from plugins.audit.runner import Report, run_audit
from plugins.host.audit import model_server_checks
from plugins.host.config import HostConfig, ProcessMatch
from plugins.ingest.audit import socket_check
from plugins.nvidia.audit import gpu_checks
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.fake import FakeNvml, scenario
from plugins.nvidia.readers import REASONS
from tests.plugins.audit_helpers import FakeProbes, GiB, by_name, make_context

ON = NvidiaConfig(enabled=True)


def _gpus(tmp_path: Path, data: dict[str, Any], config: NvidiaConfig = ON,
          tree: str = "healthy", **kwargs: Any) -> dict[str, AuditCheck]:
    ctx = make_context(tree, tmp_path, **kwargs)
    return by_name(list(gpu_checks(config, ctx, FakeNvml(data))))


def test_healthy_gpus_pass_every_check(tmp_path: Path) -> None:
    checks = _gpus(tmp_path, scenario(2), model_bytes=40 * GiB)
    assert {c.status for c in checks.values()} == {"pass"}
    assert checks["gpu.driver"].value == "driver 550.54.15, CUDA 12.4, 2 GPUs"
    assert checks["gpu0.pcie"].value == "Gen5 x16 of Gen5 x16"
    assert checks["gpu1.headroom"].value == "45 °C (slowdown at 89 °C); 312 of 700 W"
    assert checks["gpu.xid"].value == "none"
    assert len([n for n in checks if n.startswith("gpu1.")]) == 8


def test_a_degraded_pcie_link_warns_under_load_only_for_generation(tmp_path: Path) -> None:
    data = scenario(2)
    data["gpus"][1]["values"].update({"pcie.gen": 3, "pcie.width": 8})
    checks = _gpus(tmp_path, data)
    assert checks["gpu1.pcie"].status == "warn"
    assert checks["gpu1.pcie"].value == "Gen3 x8 of Gen5 x16"
    assert checks["gpu1.pcie"].fix.startswith("reseat the GPU")
    assert checks["gpu0.pcie"].status == "pass"
    # An idle GPU (P8) lowers its link generation to save power: not a fault.
    data["gpus"][1]["values"].update({"pcie.width": 16, "pstate": 8})
    idle = _gpus(tmp_path, data)["gpu1.pcie"]
    assert idle.status == "pass"
    assert idle.value == "Gen3 x16 of Gen5 x16 (idle: the link downshifts to save power)"


def test_a_throttling_gpu(tmp_path: Path) -> None:
    data = scenario(1)
    values = data["gpus"][0]["values"]
    values["clocks_event_reasons"] = REASONS["hw_thermal_slowdown"] | REASONS["gpu_idle"]
    assert _gpus(tmp_path, data)["gpu0.throttle"].status == "fail"
    assert _gpus(tmp_path, data)["gpu0.throttle"].value == "gpu_idle, hw_thermal_slowdown"
    values["clocks_event_reasons"] = REASONS["sw_power_cap"]
    assert _gpus(tmp_path, data)["gpu0.throttle"].status == "warn"
    values.update({"clocks_event_reasons": 0, "temperature.gpu": 82, "power": 690_000})
    headroom = _gpus(tmp_path, data)["gpu0.headroom"]
    assert headroom.status == "warn"
    assert headroom.value == "82 °C (slowdown at 89 °C); 690 of 700 W"


def test_modes_memory_health_and_an_old_driver(tmp_path: Path) -> None:
    data = scenario(1, cuda=11080)
    data["gpus"][0]["values"].update({"persistence": 0, "ecc_mode": 0, "mig_mode": 1,
                                      "remap.pending": 1})
    checks = _gpus(tmp_path, data)
    assert checks["gpu.driver"].status == "warn"
    assert checks["gpu0.persistence"].status == "warn"
    assert checks["gpu0.ecc"].status == "warn"
    assert checks["gpu0.mig"].value == "on, 0 instances"
    assert checks["gpu0.mig"].status == "warn"
    assert checks["gpu0.memory_health"].status == "warn"
    data["gpus"][0]["values"]["remap.failure"] = 1
    assert _gpus(tmp_path, data)["gpu0.memory_health"].status == "fail"


def test_gpu_memory_against_the_models(tmp_path: Path) -> None:
    data = scenario(2)
    assert _gpus(tmp_path, data, model_bytes=100 * GiB)["gpu.memory"].status == "warn"
    assert _gpus(tmp_path, data, model_bytes=200 * GiB)["gpu.memory"].status == "fail"


def test_xid_history_from_the_fake_backend_and_from_the_kernel_log(tmp_path: Path) -> None:
    data = scenario(1, xids=[{"gpu": 0, "xid": 13, "seq": 1}, {"gpu": 0, "xid": 13, "seq": 2}])
    fake = _gpus(tmp_path, data)["gpu.xid"]
    assert fake.status == "warn"
    assert fake.value.startswith("XID 13 x2: graphics engine exception")
    ctx = make_context("degraded", tmp_path)
    kmsg = by_name(list(gpu_checks(ON, ctx, _KernelLogOnly(scenario(1)))))["gpu.xid"]
    assert kmsg.status == "fail"  # XID 79: fallen off the bus
    assert kmsg.value.startswith("XID 13 x2: ")
    assert "XID 79 x1: GPU has fallen off the bus" in kmsg.value


class _KernelLogOnly(FakeNvml):
    """The fake without its scenario attribute, as the real pynvml module looks."""

    def __getattribute__(self, name: str) -> Any:
        if name == "data":
            raise AttributeError(name)
        return super().__getattribute__(name)

    def _gpu(self, handle: Any, fn: str) -> dict[str, Any]:
        self.calls += 1
        return dict(object.__getattribute__(self, "_data")["gpus"][handle.index])

    def nvmlInit(self) -> None:  # noqa: N802
        self._initialised = 1

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return 12040

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 1


def test_no_driver_fails_only_when_the_plugin_is_enabled(tmp_path: Path) -> None:
    broken = scenario(1, init_error="LIBRARY_NOT_FOUND")
    assert _gpus(tmp_path, broken)["gpu.driver"].status == "fail"
    off = _gpus(tmp_path, broken, NvidiaConfig())["gpu.driver"]
    assert off.status == "pass"
    assert off.value.endswith("(nvidia plugin disabled)")
    assert _gpus(tmp_path, scenario(1), NvidiaConfig())["gpu.driver"].status == "warn"


def test_model_servers_found_by_name_cmdline_or_nothing(tmp_path: Path) -> None:
    ctx = make_context("healthy", tmp_path)
    config = HostConfig(processes=[
        ProcessMatch(name="triton", process_name="tritonserver"),
        ProcessMatch(name="vllm", cmdline=r"vllm\.entrypoints")])
    checks = by_name(list(model_server_checks(config, ctx)))
    assert checks["integration.model_server.triton"].status == "pass"
    assert checks["integration.model_server.triton"].value == "1 processes (pids 4242)"
    assert checks["integration.model_server.vllm"].status == "fail"
    none = by_name(list(model_server_checks(HostConfig(), ctx)))
    assert none["integration.model_server"].status == "warn"


@pytest.fixture
def listening_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ingest.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        yield path


def test_ingest_socket_reachable_and_writable_by_the_model_server_user(
        tmp_path: Path, listening_socket: Path) -> None:
    ctx = make_context("healthy", tmp_path)
    ok = socket_check(listening_socket, ctx)
    assert ok.status == "pass"
    assert ok.value.endswith("; connect ok")
    ctx.model_server_user = getpass.getuser()
    assert socket_check(listening_socket, ctx).status == "pass"


def test_ingest_socket_refused_to_another_user(tmp_path: Path, listening_socket: Path) -> None:
    listening_socket.chmod(0o660)  # owner and group; nobody is in neither
    group = grp.getgrgid(listening_socket.stat().st_gid).gr_name
    ctx = make_context("healthy", tmp_path, model_server_user="nobody")
    check = socket_check(listening_socket, ctx)
    assert check.status == "fail"
    assert check.value.endswith("nobody may not write it")
    assert check.fix.startswith(f"add nobody to group {group}")


def test_ingest_socket_stale_absent_or_not_a_socket(tmp_path: Path) -> None:
    ctx = make_context("healthy", tmp_path)
    assert socket_check(tmp_path / "none.sock", ctx).status == "warn"
    (tmp_path / "file.sock").write_text("")
    assert socket_check(tmp_path / "file.sock", ctx).status == "fail"
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(stale))  # bound, never listening: refused, like a dead agent's
    assert socket_check(stale, ctx).value.endswith("(a stale socket?)")


class _Misbehaving:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.release = threading.Event()

    @hookimpl
    def inferwatch_audit_checks(self, config: Any, audit: AuditContext) -> Any:
        if self.behaviour == "raise":
            raise RuntimeError("checks broke on purpose")
        if self.behaviour == "hang":
            self.release.wait(10)
        if self.behaviour == "junk":
            return ["not a check"]
        return [AuditCheck("site.rack", "pass", 1, "informational", "a site check")]


def _run(tmp_path: Path, plugins: dict[str, _Misbehaving], **settings: Any) -> Report:
    found = discover()
    for name, plugin in plugins.items():
        found.manager.register(plugin, name=name)
        found.records.append(type(found.records[0])(name, "command line", name))
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    ctx.config.plugins.update(dict.fromkeys(plugins, AuditConfig()))
    config = AuditConfig(probe_bytes=1 << 20, probe_seconds=1, **settings)
    ctx.config.plugins["audit"] = config
    return run_audit(found, ctx, config)


def test_a_plugin_that_raises_hangs_or_returns_junk_is_one_failed_check(
        tmp_path: Path) -> None:
    hang = _Misbehaving("hang")
    try:
        report = _run(tmp_path, {"good": _Misbehaving("ok"), "raises": _Misbehaving("raise"),
                                 "hangs": hang, "junk": _Misbehaving("junk")}, timeout=3)
    finally:
        hang.release.set()
    checks = by_name(report.checks)
    assert checks["site.rack"].status == "pass"
    assert checks["plugin.raises"].value == "RuntimeError: checks broke on purpose"
    assert checks["plugin.hangs"].value == "did not finish before the audit's deadline"
    assert checks["plugin.junk"].status == "fail"
    assert "cpu.cores" in checks  # the others ran
    assert report.status == "not_ready"
    assert report.exit_code == 2


def test_skip_globs_leave_checks_out(tmp_path: Path) -> None:
    report = _run(tmp_path, {}, skip=["storage.*", "cpu.steal"])
    names = {c.name for c in report.checks}
    assert "cpu.cores" in names
    assert not {n for n in names if n.startswith("storage.") or n == "cpu.steal"}


def _report(*statuses: str) -> Report:
    return Report([AuditCheck(f"c{i}", s, i, "t", "w", "f|x")  # type: ignore[arg-type]
                   for i, s in enumerate(statuses)], 0.5)


@pytest.mark.parametrize(("statuses", "status", "code"), [
    ((), "ready", 0), (("pass", "pass"), "ready", 0), (("pass", "warn"), "warnings", 1),
    (("warn", "fail", "pass"), "not_ready", 2)])
def test_status_and_exit_code(statuses: tuple[str, ...], status: str, code: int) -> None:
    report = _report(*statuses)
    assert (report.status, report.exit_code) == (status, code)


def test_json_has_the_contract_shape() -> None:
    doc = json.loads(render(_report("pass", "warn"), "json"))
    assert doc == {"status": "warnings", "checks": [
        {"name": "c0", "status": "pass", "value": 0, "threshold": "t", "why": "w", "fix": "f|x"},
        {"name": "c1", "status": "warn", "value": 1, "threshold": "t", "why": "w", "fix": "f|x"}]}


def test_markdown_and_table() -> None:
    md = render(_report("pass", "fail"), "markdown").splitlines()
    assert md[0] == "# inferwatch audit: not ready"
    assert md[2] == "| status | check | value | threshold | why | fix |"
    assert md[5] == "| fail | `c1` | 1 | t | w | f\\|x |"  # a pipe in a cell is escaped
    plain = render(_report("pass", "warn"), "table")
    assert "\033[" not in plain
    assert "READY WITH WARNINGS: 1 pass, 1 warn, 0 fail (0.5s)" in plain
    assert "fix: f|x" in plain  # fixes shown for what did not pass
    coloured = render(_report("fail"), "table", colour=True)
    assert "\033[31mFAIL  \033[0m" in coloured


def test_audit_threads_are_kept_between_runs_and_a_hung_one_is_replaced() -> None:
    """New threads per audit cost a malloc arena each (RSS grew ~10 MiB in the soak)."""
    from plugins.audit import threads  # noqa: PLC0415

    first = threads.submit("test.kept", threading.get_ident).result(5)
    assert threads.submit("test.kept", threading.get_ident).result(5) == first
    release = threading.Event()
    hung = threads.submit("test.hung", release.wait, 10)
    stuck = threads.submit("test.hung", threading.get_ident).result(5)  # not queued behind it
    assert not hung.done()
    release.set()
    assert hung.result(5) is True
    assert threads.submit("test.hung", threading.get_ident).result(5) == stuck
