"""The audit against what a hostile or unusual host shows it: bytes that are not UTF-8 in
/proc and /sys (any user can name a process so), and endpoints configured by default."""

from __future__ import annotations

import dataclasses
import shutil
import socket
from pathlib import Path

import pytest

from agent.metrics import Accumulator
from plugins.audit.compute import cpu_checks
from plugins.audit.config import AuditConfig
from plugins.audit.network import endpoints, network_checks
from plugins.audit.system import os_checks
from plugins.host.audit import model_server_checks
from plugins.host.config import HostConfig, ProcessMatch
from plugins.mlflow.config import MlflowConfig
from plugins.mqtt.config import MqttConfig
from tests.plugins.audit_helpers import TREES, FakeProbes, by_name, make_context

NOT_UTF8 = b"\xff\xfe bad \xc3\x28\n"


def test_bytes_that_are_not_utf8_cost_no_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(TREES / "healthy", root)
    evil = root / "proc" / "31337"
    evil.mkdir()
    (evil / "comm").write_bytes(NOT_UTF8)  # prctl(PR_SET_NAME) takes any bytes
    (evil / "cmdline").write_bytes(NOT_UTF8)
    for governor in root.glob("sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"):
        governor.write_bytes(NOT_UTF8)
    for operstate in root.glob("sys/class/net/*/operstate"):
        operstate.write_bytes(NOT_UTF8)
    ctx = dataclasses.replace(make_context("healthy", tmp_path, probes=FakeProbes()), root=root)
    cpu = by_name(list(cpu_checks(ctx)))
    assert cpu["cpu.governor"].status == "warn"  # not "performance": said, not raised
    net = by_name(list(network_checks(ctx, 1.0)))
    assert net["network.interfaces"].status == "warn"  # no interface reads "up"
    assert by_name(list(os_checks(ctx)))["os.kernel"].status == "pass"
    servers = by_name(list(model_server_checks(
        HostConfig(processes=[ProcessMatch(name="triton", process_name="tritonserver")]), ctx)))
    assert servers["integration.model_server.triton"].value == "1 processes (pids 4242)"


def test_the_default_mqtt_port_and_uri_keys_are_probed(tmp_path: Path) -> None:
    plugins = {"mqtt": {"enabled": True, "host": "broker.internal"},
               "mlflow": {"enabled": True, "tracking_uri": "http://mlflow.internal:5000"}}
    models: dict[str, type] = {"mqtt": MqttConfig, "mlflow": MlflowConfig}
    ctx = make_context("healthy", tmp_path, plugins, models=models)
    assert endpoints(ctx) == [("plugins.mlflow.tracking_uri", "mlflow.internal", 5000),
                              ("plugins.mqtt", "broker.internal", 1883)]
    plugins["mqtt"]["tls"] = True
    tls = make_context("healthy", tmp_path, plugins, models=models)
    assert ("plugins.mqtt", "broker.internal", 8883) in endpoints(tls)


def test_a_model_glob_over_the_whole_disk_stops_at_its_time_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`model_paths = ["/**"]` walked every file before the audit's deadline started (15 s on
    this small host); the scan now stops at its own cap with what it counted."""
    from plugins.audit import runner  # noqa: PLC0415

    models = tmp_path / "models"
    models.mkdir()
    for i in range(5):
        (models / f"m{i}.bin").write_bytes(b"x" * 10)
    settings = AuditConfig(root=str(tmp_path), model_paths=["/models/*.bin"])
    assert runner.model_bytes(settings) == 50
    monkeypatch.setattr(runner, "MODEL_SCAN_SECONDS", 0.0)
    assert runner.model_bytes(settings) == 10  # the first file, then the cap


def test_the_scheduled_audit_knows_the_plugins_the_agent_was_started_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`inferwatch run -p MODULE`: the scheduled audit rediscovered plugins without it, so the
    plugin's section was an unknown key: a failed `config` check, and the rest on defaults."""
    from agent.context import PluginContext  # noqa: PLC0415
    from agent.metrics import PluginMetrics  # noqa: PLC0415
    from agent.model import Event  # noqa: PLC0415
    from plugins.audit.collector import AuditCollector  # noqa: PLC0415
    from tests.helpers import FIXTURES  # noqa: PLC0415

    monkeypatch.syspath_prepend(str(FIXTURES))
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[plugins.burner]\nmarker = "{tmp_path / "absent"}"\n'
                      '[plugins.audit]\nenabled = true\nprobe_bytes = 1048576\n'
                      'skip = ["storage.*", "network.*"]\n')
    events: list[Event] = []
    settings = AuditConfig(enabled=True)
    ctx = PluginContext(plugin="audit", config=settings, host_id="h", state_root=tmp_path,
                        metrics=PluginMetrics("audit", 1000),
                        emitter=lambda e: not events.append(e),  # type: ignore[func-returns-value]
                        config_path=config, extra_plugins=("iwtest.burner",))
    AuditCollector(settings, ctx).collect(Accumulator())
    checks = {c["name"]: c for c in events[0].data["checks"]}
    assert checks["config"]["status"] == "pass", checks["config"]["value"]


def test_the_scrape_check_ignores_proxy_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `http_proxy` set (common on corporate hosts) the agent's own loopback listener
    was asked for through the proxy: a dead proxy made a running agent `fail`."""
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from plugins.audit.integration import prometheus_check  # noqa: PLC0415

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"inferwatch_up 1\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with socket.socket() as dead:  # a proxy port nobody listens on
            dead.bind(("127.0.0.1", 0))
            proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        ctx = make_context("healthy", tmp_path)
        ctx.config.prometheus.listen = f"127.0.0.1:{port}"
        check = prometheus_check(ctx)
    finally:
        server.shutdown()
        server.server_close()
    assert check.status == "pass", check.value
    assert check.value == f"http://127.0.0.1:{port}/metrics: HTTP 200, 16 bytes"


def test_checks_past_the_bound_still_count_towards_the_verdict() -> None:
    """A plugin that yields more than MAX_CHECKS names: the overflow was cut silently, so a
    failure past the bound left the host `ready` (exit 0)."""
    from agent.audit import AuditCheck  # noqa: PLC0415
    from plugins.audit.runner import MAX_CHECKS, Report, _bounded  # noqa: PLC0415

    checks = [AuditCheck(f"flood.{i}", "pass", i, "t", "w") for i in range(MAX_CHECKS + 5)]
    checks.append(AuditCheck("late.failure", "fail", 0, "t", "w", "f"))
    kept = _bounded(checks, [])
    assert len(kept) == MAX_CHECKS
    assert kept[-1].name == "audit.truncated"
    assert kept[-1].status == "fail"
    assert kept[-1].value == "7 checks left out (1 fail, 0 warn)"
    assert Report(kept, 0.0).exit_code == 2
