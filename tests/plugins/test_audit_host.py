"""Each host check of `inferwatch audit` on fake /proc and /sys trees (tests/fixtures/audit)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import msgspec
import pytest

from agent.audit import AuditContext
from agent.config import Duration, PluginConfig
from plugins.audit.compute import cpu_checks, memory_checks
from plugins.audit.config import AuditConfig
from plugins.audit.network import endpoints, network_checks
from plugins.audit.storage import storage_checks
from plugins.audit.system import os_checks
from plugins.mqtt.config import MqttConfig
from tests.plugins.audit_helpers import FakeProbes, GiB, by_name, make_context

MiB = 1 << 20


def test_cpu_on_a_healthy_host_passes_with_the_measured_values(tmp_path: Path) -> None:
    checks = by_name(list(cpu_checks(make_context("healthy", tmp_path))))
    assert {c.status for c in checks.values()} == {"pass"}
    assert checks["cpu.cores"].value == ("Intel(R) Xeon(R) Platinum 8480+: 16 logical CPUs, "
                                         "16 physical cores")
    assert checks["cpu.isa"].value == "avx2 avx512f avx512_vnni avx512_bf16 amx_tile"
    assert checks["cpu.governor"].value == "performance"
    assert checks["cpu.numa"].value == "node0: cpus 0-7; node1: cpus 8-15"
    assert checks["cpu.numa"].fix.startswith("pin the model server")
    assert checks["cpu.steal"].value == round(1000 / 9202500, 4)


def test_cpu_on_a_degraded_vm_warns_and_fails_with_fixes(tmp_path: Path) -> None:
    checks = by_name(list(cpu_checks(make_context("degraded", tmp_path))))
    assert checks["cpu.cores"].status == "warn"
    assert checks["cpu.isa"].status == "warn"
    assert checks["cpu.isa"].value.startswith("none of avx2")
    assert checks["cpu.governor"].status == "warn"
    assert checks["cpu.governor"].value == "powersave"
    assert checks["cpu.steal"].status == "fail"
    assert checks["cpu.steal"].value == round(1_500_000 / 9_702_000, 4)
    assert all(c.fix for c in checks.values() if c.status != "pass")


def test_memory_is_judged_against_the_models_configured(tmp_path: Path) -> None:
    healthy = by_name(list(memory_checks(make_context("healthy", tmp_path,
                                                      model_bytes=100 * GiB))))
    assert healthy["memory.size"].status == "pass"
    assert healthy["memory.size"].value == 512 * GiB
    too_big = by_name(list(memory_checks(make_context("healthy", tmp_path,
                                                      model_bytes=300 * GiB))))
    assert too_big["memory.size"].status == "warn"  # fits, but not twice (a rollout)
    assert "2 x the 300.0 GiB" in too_big["memory.size"].threshold
    degraded = by_name(list(memory_checks(make_context("degraded", tmp_path,
                                                       model_bytes=5 * GiB))))
    assert degraded["memory.size"].status == "fail"
    assert degraded["memory.swap"].status == "warn"
    assert degraded["memory.swap"].value == f"{GiB} of {2 * GiB} bytes used; swappiness 60"
    assert degraded["memory.thp"].status == "warn"
    assert degraded["memory.thp"].value == "always"
    assert degraded["memory.hugepages"].status == "warn"  # 2 GiB reserved of 4, none used
    assert {healthy[k].status for k in ("memory.swap", "memory.thp", "memory.hugepages")} == {
        "pass"}


def test_os_kernel_limits_and_clock(tmp_path: Path) -> None:
    ok = by_name(list(os_checks(make_context("healthy", tmp_path, probes=FakeProbes()))))
    assert [c.status for c in ok.values()] == ["pass"] * 4
    assert ok["os.clock"].value == "synchronised (chronyd)"
    probes = FakeProbes(nofile=(1024, 1024), nproc=(64, 100_000), synced=False)
    ctx = make_context("degraded", tmp_path, {"ingest": {"enabled": True}}, probes=probes,
                       models=_ingest_model())
    bad = by_name(list(os_checks(ctx)))
    assert bad["os.kernel"].status == "warn"
    assert bad["os.kernel"].value == "4.15.0-213-generic"
    assert bad["os.nofile"].status == "fail"  # the hard limit is below what ingest needs
    assert bad["os.nofile"].threshold.startswith(">= 4384")  # 256 + 32 x 1 plugin + 4096 for ingest
    assert bad["os.nproc"].status == "warn"  # soft limit low, hard limit enough
    assert bad["os.clock"].status == "fail"


def test_an_unknown_clock_state_falls_back_to_a_time_daemon(tmp_path: Path) -> None:
    ctx = make_context("healthy", tmp_path, probes=FakeProbes(synced=None))
    assert by_name(list(os_checks(ctx)))["os.clock"].status == "pass"
    ctx = make_context("degraded", tmp_path, probes=FakeProbes(synced=None))
    assert by_name(list(os_checks(ctx)))["os.clock"].status == "fail"


def test_storage_probe_measures_in_state_dir_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 5.0, None)))
    assert checks["storage.state_free"].status == "pass"
    assert checks["storage.state_fstype"].value == "ext4 at /"
    assert isinstance(checks["storage.write"].value, float)
    assert isinstance(checks["storage.read"].value, float)
    assert isinstance(checks["storage.fsync"].value, float)
    assert list((tmp_path / "state").iterdir()) == []  # the probe file is gone


def test_a_full_filesystem_fails_and_is_not_probed(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    ctx = make_context("healthy", tmp_path, probes=FakeProbes(free=0))
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 5.0, "/models")))
    assert checks["storage.state_free"].status == "fail"
    assert checks["storage.models_free"].status == "pass"  # no models declared: nothing needed
    assert checks["storage.probe"].status == "fail"
    assert checks["storage.probe"].value == f"not run: only 0 bytes free (needs {4 * MiB})"
    assert "storage.write" not in checks


def test_outbox_limits_raise_the_free_space_needed(tmp_path: Path) -> None:
    plugins = {"mqtt": {"enabled": True, "outbox_max_bytes": 8 * GiB}}
    ctx = make_context("healthy", tmp_path, plugins, models={"mqtt": MqttConfig},
                       probes=FakeProbes(free=5 * GiB))
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 1.0, None)))
    assert checks["storage.state_free"].status == "warn"  # 5 GiB < 1 + 8 GiB
    assert "9.0 GiB" in checks["storage.state_free"].threshold


def test_state_dir_on_a_network_filesystem_fails(tmp_path: Path) -> None:
    ctx = make_context("degraded", tmp_path, probes=FakeProbes())
    ctx.config.agent.state_dir = "/tmp/inferwatch-state"  # /tmp is NFS in this tree
    check = by_name(list(storage_checks(ctx, 2 * MiB, 1.0, None)))["storage.state_fstype"]
    assert check.status == "fail"
    assert check.value == "nfs4 at /tmp"


def test_interfaces_speed_and_mtu(tmp_path: Path) -> None:
    ok = by_name(list(network_checks(make_context("healthy", tmp_path), 1.0)))
    assert ok["network.interfaces"].value == "eth0"  # lo is virtual: not counted
    assert ok["network.eth0"].status == "pass"
    assert ok["network.eth0"].value == "25000 Mb/s, MTU 9000"
    bad = by_name(list(network_checks(make_context("degraded", tmp_path), 1.0)))
    assert bad["network.interfaces"].value == "eth0"  # eth1 is down
    assert bad["network.eth0"].status == "warn"
    assert bad["network.eth0"].value == "1000 Mb/s, MTU 576"


def test_every_endpoint_the_config_names_is_probed(tmp_path: Path) -> None:
    plugins = {"mqtt": {"enabled": True, "host": "broker.internal", "port": 8883}}
    probes = FakeProbes(rtt={("broker.internal", 8883): 0.004})
    ctx = make_context("healthy", tmp_path, plugins, models={"mqtt": MqttConfig}, probes=probes)
    checks = by_name(list(network_checks(ctx, 1.0)))
    assert checks["network.endpoint.plugins.mqtt"].status == "pass"
    assert checks["network.endpoint.plugins.mqtt"].value == "broker.internal:8883: 4.0 ms"
    probes.rtt[("broker.internal", 8883)] = 0.2
    slow = by_name(list(network_checks(ctx, 1.0)))["network.endpoint.plugins.mqtt"]
    assert slow.status == "warn"
    probes.rtt.clear()
    down = by_name(list(network_checks(ctx, 1.0)))["network.endpoint.plugins.mqtt"]
    assert down.status == "fail"
    assert down.value == "broker.internal:8883: Connection refused"


class Nested(msgspec.Struct, kw_only=True):
    host: str = "10.0.0.5"
    port: int = 1883


class Sinks(PluginConfig):
    """A plugin shaped like an alert sink: URLs in a list, a webhook, a nested broker."""

    urls: list[str] = msgspec.field(default_factory=lambda: [
        "http://am-1:9093", "https://am-2", "not a url"])
    webhook_url: str = "https://hooks.example.com:8443/x"
    broker: Nested = msgspec.field(default_factory=Nested)


def test_endpoints_are_found_in_any_plugin_config_shape(tmp_path: Path) -> None:
    ctx = make_context("healthy", tmp_path, {"sinks": {}}, models={"sinks": Sinks})
    assert endpoints(ctx) == [
        ("plugins.sinks.broker", "10.0.0.5", 1883),
        ("plugins.sinks.urls[0]", "am-1", 9093),
        ("plugins.sinks.urls[1]", "am-2", 443),
        ("plugins.sinks.webhook_url", "hooks.example.com", 8443),
    ]


def test_a_real_connection_is_timed(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        rtt = AuditContext(config=make_context("healthy", tmp_path).config).probes.connect(
            "127.0.0.1", port, 1.0)
    assert 0 <= rtt < 1.0


def _ingest_model() -> dict[str, type]:
    from plugins.ingest.config import IngestConfig  # noqa: PLC0415

    return {"ingest": IngestConfig}


@pytest.mark.parametrize("key", ["probe_seconds", "connect_timeout"])
def test_probe_bounds_are_enforced_by_the_config(key: str) -> None:
    from agent.config import build_config  # noqa: PLC0415
    from agent.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as err:
        build_config({"plugins": {"audit": {key: 30}}}, {"audit": AuditConfig})
    assert json.dumps(err.value.problems).count(f"plugins.audit.{key}") == 1


def test_a_short_interval_brings_the_audit_timeout_with_it() -> None:
    assert AuditConfig().timeout == 60
    assert AuditConfig(interval=Duration(30.0)).timeout == 30


def test_model_sizes_are_summed_from_the_globs_under_the_root(tmp_path: Path) -> None:
    from plugins.audit.runner import model_bytes  # noqa: PLC0415

    (tmp_path / "models" / "fraud" / "3").mkdir(parents=True)
    (tmp_path / "models" / "fraud" / "3" / "model.onnx").write_bytes(b"x" * 1000)
    (tmp_path / "models" / "llm.safetensors").write_bytes(b"x" * 500)
    (tmp_path / "models" / "notes.txt").write_bytes(b"x" * 7)
    settings = AuditConfig(root=str(tmp_path), model_bytes=10,
                           model_paths=["/models/**/*.onnx", "/models/*.safetensors"])
    assert model_bytes(settings) == 1510


def test_a_hung_filesystem_fails_the_probe_in_bounded_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An fsync that never returns (a dead NFS server): the audit moves on, the file goes."""
    import threading  # noqa: PLC0415

    from plugins.audit import storage  # noqa: PLC0415

    release = threading.Event()
    monkeypatch.setattr(storage, "_fsyncs", lambda fd, deadline: release.wait(10) and 0.0)
    (tmp_path / "state").mkdir()
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 0.2, None)))
    assert checks["storage.probe"].status == "fail"
    assert checks["storage.probe"].value.endswith("filesystem within 1.2s")
    release.set()

    def gone() -> bool:
        return not list((tmp_path / "state").iterdir())

    from tests.helpers import poll  # noqa: PLC0415

    poll(gone, what="the probe file removed once the filesystem answers")


def test_a_hanging_resolver_fails_one_endpoint_only(tmp_path: Path) -> None:
    plugins = {"mqtt": {"enabled": True, "host": "hangs.example", "port": 1883}}
    probes = FakeProbes()
    ctx = make_context("healthy", tmp_path, plugins, models={"mqtt": MqttConfig},
                       probes=probes)
    try:
        checks = by_name(list(network_checks(ctx, 0.1)))
    finally:
        probes.release.set()
    hung = checks["network.endpoint.plugins.mqtt"]
    assert hung.status == "fail"
    assert hung.value == "hangs.example:1883: no answer (name resolution or connect hung)"
    assert checks["network.eth0"].status == "pass"


def test_a_missing_state_dir_is_the_finding_and_nothing_is_written(tmp_path: Path) -> None:
    """Issue 17: with state_dir missing, the probe wrote in its nearest existing parent."""
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    before = sorted(tmp_path.rglob("*"))
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 1.0, None)))
    probe = checks["storage.probe"]
    assert probe.status == "warn"
    assert probe.value == f"not run: state_dir {tmp_path / 'state'} does not exist"
    assert "storage.write" not in checks
    assert "storage.fsync" not in checks
    assert checks["storage.state_free"].status == "pass"  # read where it will be: still judged
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "state").exists()


def test_stale_probe_files_of_earlier_runs_are_removed_first(tmp_path: Path) -> None:
    """Probe files left by a probe that hung (this process, untouched for a while) or by a
    process that is gone go; a concurrent probe's fresh file and other files stay."""
    import os  # noqa: PLC0415
    import time  # noqa: PLC0415

    from plugins.audit import storage  # noqa: PLC0415

    state = tmp_path / "state"
    state.mkdir()
    me, gone = os.getpid(), _dead_pid()
    files = {"hung": f".inferwatch-audit-{me}-a", "dead": f".inferwatch-audit-{gone}-b",
             "old_format": f".inferwatch-audit-{gone}", "fresh": f".inferwatch-audit-{me}-c",
             "other": "outbox.sqlite"}
    for name in files.values():
        (state / name).write_bytes(b"x")
    old = time.time() - storage.STALE_SECONDS - 5
    os.utime(state / files["hung"], (old, old))
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 1.0, None)))
    assert isinstance(checks["storage.fsync"].value, float)
    assert sorted(p.name for p in state.iterdir()) == sorted([files["fresh"], files["other"]])


def _dead_pid() -> int:
    import subprocess  # noqa: PLC0415

    child = subprocess.Popen(["true"])  # a pid that no longer runs
    child.wait()
    return child.pid


def test_a_failing_probe_removes_its_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails midway (ENOSPC): one failed check, and no file left."""
    import errno  # noqa: PLC0415

    from plugins.audit import storage  # noqa: PLC0415

    def full(fd: int, size: int, deadline: float) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "_write", full)
    (tmp_path / "state").mkdir()
    ctx = make_context("healthy", tmp_path, probes=FakeProbes())
    checks = by_name(list(storage_checks(ctx, 2 * MiB, 1.0, None)))
    assert checks["storage.probe"].status == "fail"
    assert checks["storage.probe"].value.startswith("No space left on device writing ")
    assert ".inferwatch-audit-" in checks["storage.probe"].value
    assert list((tmp_path / "state").iterdir()) == []
