"""The example plugin's own tests, written with `agent.testing` as a plugin author would."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from inferwatch_model_files import ModelFiles, ModelFilesConfig, inferwatch_components

from agent.config import build_config
from agent.errors import ConfigError
from agent.testing import fake_context, run_collector


async def test_it_reports_size_age_and_presence(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\0" * 1234)
    an_hour_ago = time.time() - 3600
    os.utime(model, (an_hour_ago, an_hour_ago))
    files = {"fraud": str(model), "gone": str(tmp_path / "missing.onnx")}
    ctx = fake_context("model_files", ModelFilesConfig(files=files))

    metrics = await run_collector(ModelFiles(files), ctx)

    assert metrics[("inferwatch_model_file_size_bytes", (("model", "fraud"),))] == 1234
    assert metrics[("inferwatch_model_file_present", (("model", "fraud"),))] == 1
    assert metrics[("inferwatch_model_file_present", (("model", "gone"),))] == 0
    assert 3600 <= metrics[("inferwatch_model_file_age_seconds", (("model", "fraud"),))] < 3660
    assert ("inferwatch_model_file_size_bytes", (("model", "gone"),)) not in metrics


async def test_a_file_that_appears_is_reported_at_the_next_tick(tmp_path: Path) -> None:
    model = tmp_path / "late.onnx"
    collector = ModelFiles({"late": str(model)})
    ctx = fake_context("model_files")
    assert (await run_collector(collector, ctx))[
        ("inferwatch_model_file_present", (("model", "late"),))] == 0
    model.write_bytes(b"x")
    assert (await run_collector(collector, ctx))[
        ("inferwatch_model_file_present", (("model", "late"),))] == 1


def test_the_hook_builds_one_collector_from_the_config() -> None:
    config = ModelFilesConfig(enabled=True, files={"m": "/srv/m.onnx"})
    (component,) = inferwatch_components(config, fake_context("model_files", config))
    assert isinstance(component, ModelFiles)
    assert component.files == {"m": Path("/srv/m.onnx")}


def test_unknown_keys_and_wrong_types_are_config_errors() -> None:
    models = {"model_files": ModelFilesConfig}
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"model_files": {"fils": {}, "files": {"m": 3}}}}, models)
    assert any("plugins.model_files" in problem for problem in caught.value.problems)
    config = build_config({"plugins": {"model_files": {"files": {"m": "/x"}}}}, models)
    assert config.plugins["model_files"].enabled is False  # opt-in
