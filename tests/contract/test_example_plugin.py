"""The contrib example plugin loads, validates its config and reports real files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ConfigWriter
from tests.helpers import ROOT, poll, run_cli, value

SRC = str(ROOT / "contrib" / "example-plugin" / "src")


def test_example_plugin_end_to_end(write_config: ConfigWriter, agent_factory,
                                   tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\0" * 1234)
    config, port = write_config(
        "[plugins.host]\nenabled = false\n[plugins.model_files]\nenabled = true\n"
        f'interval = "100ms"\nfiles = {{ fraud = "{model}", gone = "{tmp_path / "x"}" }}\n')
    check = run_cli("check", "-p", "model_files=inferwatch_model_files", "-c", str(config),
                    env={"PYTHONPATH": SRC})
    assert check.returncode == 0, check.stderr
    agent = agent_factory(config, port, "-p", "model_files=inferwatch_model_files",
                          env={"PYTHONPATH": SRC})
    metrics = poll(lambda: (m := agent.scrape()) and
                   value(m, "inferwatch_model_file_size_bytes", model="fraud") and m)
    assert value(metrics, "inferwatch_model_file_size_bytes", model="fraud") == 1234
    assert value(metrics, "inferwatch_model_file_present", model="gone") == 0
    assert 0 <= (value(metrics, "inferwatch_model_file_age_seconds", model="fraud") or -1) < 60
