"""Settings that expose something are warned about, by `inferwatch check` and at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import build_config
from agent.errors import ConfigError
from agent.exposure import warnings
from plugins.ingest.config import IngestConfig
from plugins.mqtt.config import MqttConfig
from tests.conftest import ConfigWriter
from tests.helpers import free_port, run_cli

MODELS = {"mqtt": MqttConfig, "ingest": IngestConfig}


def _secret(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / f"secret-{mode:o}"
    path.write_text("hunter2-secret\n")
    path.chmod(mode)
    return path


def _warnings(raw: dict[str, object], tmp_path: Path) -> list[str]:
    return warnings(build_config(raw, MODELS, base_dir=tmp_path))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_secret_file_others_can_read(tmp_path: Path, mode: int) -> None:
    path = _secret(tmp_path, mode)
    raw = {"plugins": {"mqtt": {"enabled": True, "tls": True, "username": "u",
                                "password": {"file": str(path)}}}}
    assert _warnings(raw, tmp_path) == [
        f"plugins.mqtt.password: secret file {path} is readable by group or others "
        f"(mode {mode:04o}); chmod 600 it"]


def test_private_secrets_and_env_secrets_are_fine(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IW_TOKEN", "token-value")
    path = _secret(tmp_path, 0o600)
    raw = {"plugins": {"mqtt": {"enabled": True, "tls": True, "username": "u",
                                "password": {"file": str(path)}},
                       "ingest": {"enabled": True, "http_listen": "127.0.0.1:9880",
                                  "token": {"env": "IW_TOKEN"}}}}
    assert _warnings(raw, tmp_path) == []


def test_a_password_in_clear_to_a_remote_broker(tmp_path: Path) -> None:
    path = _secret(tmp_path, 0o600)
    mqtt = {"enabled": True, "host": "broker.example", "username": "u",
            "password": {"file": str(path)}}
    raw = {"plugins": {"mqtt": mqtt, "ingest": {"enabled": True, "mqtt": {**mqtt, "qos": 0}}}}
    del raw["plugins"]["ingest"]["mqtt"]["enabled"]  # type: ignore[index]
    assert sorted(_warnings(raw, tmp_path)) == [
        "plugins.ingest.mqtt.password: sent in clear to broker.example (tls = false); "
        "set tls = true",
        "plugins.ingest.mqtt.qos: 0 is not durable: the broker keeps nothing for the agent "
        "while it restarts or is away; use 1",
        "plugins.mqtt.password: sent in clear to broker.example (tls = false); set tls = true",
    ]
    mqtt["host"] = "127.0.0.1"  # loopback: nothing crosses a network
    raw = {"plugins": {"mqtt": mqtt}}
    assert _warnings(raw, tmp_path) == []


def test_tokens_and_basic_auth_off_loopback_without_tls(tmp_path: Path) -> None:
    path = _secret(tmp_path, 0o600)
    hashed = "$2b$04$" + "a" * 53
    raw = {"prometheus": {"listen": "0.0.0.0:9879", "basic_auth_users": {"p": hashed}},
           "plugins": {"ingest": {"enabled": True, "http_listen": ":9880",
                                  "token": {"file": str(path)}}}}
    assert _warnings(raw, tmp_path) == [
        "prometheus.listen: credentials cross the network in clear (0.0.0.0:9879, no TLS); "
        "set tls_cert_file and tls_key_file",
        "plugins.ingest.http_listen: credentials cross the network in clear (:9880, no TLS); "
        "set tls_cert_file and tls_key_file",
    ]


def test_qos_0_for_events_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"plugins": {"mqtt": {"qos": 0}}}, MODELS)
    assert error.value.problems == [
        "plugins.mqtt.qos: 0 is not durable: the broker never acknowledges, so the outbox "
        "would delete events it cannot know arrived; use 1 or 2"]


def test_check_prints_the_warnings_and_still_passes(write_config: ConfigWriter,
                                                    tmp_path: Path) -> None:
    path = _secret(tmp_path, 0o644)
    config, _ = write_config(f'[plugins.mqtt]\nenabled = true\nhost = "broker.example"\n'
                             f'username = "u"\npassword = {{file = "{path}"}}\n')
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "inferwatch: warning: plugins.mqtt.password: sent in clear to broker.example "
        "(tls = false); set tls = true",
        f"inferwatch: warning: plugins.mqtt.password: secret file {path} is readable by "
        "group or others (mode 0644); chmod 600 it",
    ]
    assert "hunter2" not in result.stdout + result.stderr


def test_the_agent_logs_them_at_start(write_config: ConfigWriter, agent_factory,
                                      tmp_path: Path) -> None:
    path = _secret(tmp_path, 0o640)
    config, port = write_config(f'[plugins.ingest]\nenabled = true\nhttp_listen = '
                                f'"127.0.0.1:{free_port()}"\ntoken = {{file = "{path}"}}\n'
                                f'socket_path = "{tmp_path / "s.sock"}"\n')
    agent = agent_factory(config, port)
    lines = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    assert {"event": "exposed setting", "level": "warning",
            "problem": f"plugins.ingest.token: secret file {path} is readable by group or "
                       "others (mode 0640); chmod 600 it"}.items() <= next(
        line for line in lines if line["event"] == "exposed setting").items()
