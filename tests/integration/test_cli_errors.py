"""Bad input at the command line: one line per problem naming the key, exit 78, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import run_cli

pytestmark = pytest.mark.integration


def _errors(result) -> list[str]:
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr.strip().splitlines()


def test_check_accepts_the_documented_example() -> None:
    root = Path(__file__).resolve().parents[2]
    result = run_cli("check", "-c", str(root / "agent.toml"), cwd=root)
    assert result.returncode == 0, result.stderr
    assert "plugins enabled: alerts, host" in result.stdout


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[agent\nlog_level = 'info'\n")
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 78
    (line,) = _errors(result)
    assert line.startswith(f"inferwatch: error: {path}: invalid TOML:")
    assert "line 1" in line


def test_every_problem_at_once_with_its_path(write_config: ConfigWriter) -> None:
    path, _ = write_config(
        '[plugins.host]\ninterval = "soon"\nbogus = 1\nnetwork_exclude = "("\n'
        '[[plugins.host.processes]]\nname = "triton"\n'
        '[plugins.nosuch]\nenabled = true\n',
        prometheus='tls_cert_file = "x.crt"\n',  # beside the config: it exists
    )
    (path.parent / "x.crt").write_text("")
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 78
    lines = _errors(result)
    expected = [
        "plugins.host.bogus: unknown key",
        "plugins.host.interval: invalid duration 'soon'",
        "plugins.host.processes[0].name: set exactly one of",
        "plugins.nosuch: no plugin named 'nosuch'",
        "prometheus.tls_key_file: tls_cert_file and tls_key_file go together",
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    assert all(line.startswith("inferwatch: error: ") for line in lines)


def test_wrong_type_and_missing_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nevent_queue_size = "many"\nlog_level = "loud"\n'
                    '[plugins.mqtt]\nusername = "agent"\npassword = { file = "absent-pw" }\n')
    lines = _errors(run_cli("check", "-c", str(path)))
    assert "inferwatch: error: agent.event_queue_size: Expected `int`, got `str`" in lines
    assert any("agent.log_level: must be one of 'debug', 'info'" in line for line in lines)
    assert any(line.startswith("inferwatch: error: plugins.mqtt.password: cannot read secret "
                               f"file {tmp_path / 'absent-pw'}") for line in lines), lines


def test_unwritable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{blocker}/state"\n')
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(path))
        assert result.returncode == 78
        (line,) = _errors(result)
        assert f"agent.state_dir: {blocker}/state is not writable" in line


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("run", "-c", str(tmp_path / "absent.toml"))
    assert result.returncode == 78
    assert _errors(result) == [f"inferwatch: error: {tmp_path / 'absent.toml'}: no such file"]


def test_check_names_every_missing_file_with_its_toml_path(tmp_path: Path) -> None:
    """A file the config names is checked when it is loaded, not when it is first used."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ok.pem").write_text("")
    unreadable = folder / "key.pem"
    unreadable.write_text("")
    unreadable.chmod(0)
    path = folder / "agent.toml"
    path.write_text(
        '[prometheus]\ntls_cert_file = "ok.pem"\ntls_key_file = "gone.key"\n'
        '[plugins.mqtt]\nenabled = true\ntls = true\nca_file = "ca.pem"\n'
        'cert_file = "ok.pem"\nkey_file = "key.pem"\n'
        '[plugins.nvidia]\nenabled = true\nbackend = "fake"\nfake_scenario = "gpus.json"\n'
        '[plugins.ingest]\nenabled = true\n'
        '[plugins.ingest.mqtt]\nca_file = "/nonexistent/ingest-ca.pem"\ntls = true\n'
        '[plugins.drift]\nenabled = true\n'
        '[plugins.drift.models.fraud]\nreference = "refs/fraud.json"\n'
        '[plugins.mlflow]\nenabled = true\ntracking_uri = "https://mlflow.internal"\n'
        'ca_file = "mlflow-ca.pem"\n')
    result = run_cli("check", "-c", str(path), cwd=tmp_path)  # not the config's folder
    assert result.returncode == 78
    lines = _errors(result)
    expected = [
        f"prometheus.tls_key_file: {folder}/gone.key: no such file",
        f"plugins.mqtt.ca_file: {folder}/ca.pem: no such file",
        f"plugins.nvidia.fake_scenario: {folder}/gpus.json: no such file",
        "plugins.ingest.mqtt.ca_file: /nonexistent/ingest-ca.pem: no such file",
        f"plugins.drift.models.fraud.reference: {folder}/refs/fraud.json: no such file",
        f"plugins.mlflow.ca_file: {folder}/mlflow-ca.pem: no such file",
    ]
    if __import__("os").geteuid() != 0:  # root reads anything
        expected.append(f"plugins.mqtt.key_file: {folder}/key.pem: cannot read")
    for fragment in expected:
        assert any(line.startswith(f"inferwatch: error: {fragment}") for line in lines), (
            fragment, lines)
    assert not any("ok.pem" in line for line in lines)


def test_check_names_a_drift_reference_that_is_not_a_profile(tmp_path: Path) -> None:
    """It passed `check`, then the agent logged an error and captured its own reference."""
    (tmp_path / "ref.json").write_text('{"garbage": 1}')
    path = tmp_path / "agent.toml"
    path.write_text('[plugins.ingest]\nenabled = true\n[plugins.drift]\nenabled = true\n'
                    '[plugins.drift.models.fraud]\nreference = "ref.json"\n')
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 78, result.stderr
    (line,) = _errors(result)
    assert line.startswith(f"inferwatch: error: plugins.drift.models.fraud.reference: "
                           f"{tmp_path}/ref.json: not a reference profile: ")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    from agent.config import load_config  # noqa: PLC0415
    from agent.loader import discover  # noqa: PLC0415

    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "gpus.json").write_text("{}")
    path = folder / "agent.toml"
    path.write_text('[agent]\nstate_dir = "state"\n[plugins.nvidia]\nenabled = true\n'
                    'backend = "fake"\nfake_scenario = "gpus.json"\n'
                    '[plugins.ingest]\nsocket_path = "run/ingest.sock"\n')
    config = load_config(path, discover([]).config_models())
    assert config.agent.state_dir == str(folder / "state")
    assert config.plugins["nvidia"].fake_scenario == str(folder / "gpus.json")  # type: ignore[attr-defined]
    assert config.plugins["ingest"].socket_path == str(folder / "run/ingest.sock")  # type: ignore[attr-defined]


def test_check_warns_about_monitors_without_ingestion(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path}/state"\n'
                    '[plugins.quality]\nenabled = true\n[plugins.drift]\nenabled = true\n')
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "inferwatch: warning: plugins.drift: enabled, but it needs [plugins.ingest] enabled too "
        "(it will have nothing to do)",
        "inferwatch: warning: plugins.quality: enabled, but it needs [plugins.ingest] enabled "
        "too (it will have nothing to do)"]
    path.write_text(path.read_text() + "[plugins.ingest]\nenabled = true\n")
    assert run_cli("check", "-c", str(path)).stderr == ""


def test_help_lists_every_command() -> None:
    from agent.cli import _parser  # noqa: PLC0415

    result = run_cli("--help")
    assert result.returncode == 0
    commands = list(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"run", "check", "plugins", "replay", "reference", "demo"} <= set(commands)
    summary = " ".join(result.stdout.split())
    assert f"Commands: {', '.join(commands)}." in summary
    for command in commands:
        assert f"\n    {command}" in result.stdout, command
