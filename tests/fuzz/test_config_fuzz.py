"""Fuzzing the config decoder: any TOML document, and any table tree, with every built-in
plugin's model, is a Config or a ConfigError naming paths; never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import PluginConfig, build_config, load_config
from agent.errors import ConfigError
from agent.loader import discover


@pytest.fixture(scope="module")
def models() -> dict[str, type[PluginConfig]]:
    return discover().config_models()


KEYS = ["enabled", "interval", "timeout", "listen", "host", "port", "qos", "tls", "password",
        "username", "token", "http_listen", "windows", "models", "mqtt", "retrain", "file",
        "env", "topics", "basic_auth_users", "state_dir", "log_level", "max_body_bytes",
        "label_wait", "webhook_url", "reference", "features", "nosuch"]
leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) |
          st.sampled_from(["1h", "0s", "-1s", "1m30s", "127.0.0.1:0", ":9880", "[::1]:1",
                           "10000n/2000n", "1h/7m", "fraud", "ftp://x", "http://127.0.0.1:1/"]))
tables = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4), max_leaves=12)
documents = st.fixed_dictionaries({}, optional={
    "agent": tables, "prometheus": tables,
    "plugins": st.dictionaries(st.sampled_from(["host", "nvidia", "mqtt", "ingest", "quality",
                                                "drift", "eventlog", "nosuch"]), tables,
                               max_size=3)})


def _problems_name_paths(error: ConfigError) -> None:
    assert error.problems
    for problem in error.problems:
        path, sep, message = problem.partition(": ")
        assert sep, problem
        assert path
        assert message


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_any_table_tree_is_a_config_or_errors_with_paths(models: dict[str, type[PluginConfig]],
                                                        raw: dict[str, Any]) -> None:
    try:
        config = build_config(raw, models, base_dir=Path("/nonexistent"))
    except ConfigError as error:
        _problems_name_paths(error)
        return
    assert set(config.plugins) == set(models)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.sampled_from([
    '[plugins.ingest]\nwindows = ["1h", 3]\n', "[agent]\nlog_level = 1\n[agent]\n",
    "[plugins]\ningest = 1\n", "a = \"\\u0000\"\n", "[prometheus]\nlisten = ''\n"]))
def test_any_text_file_is_a_config_or_errors_with_paths(
        models: dict[str, type[PluginConfig]], tmp_path_factory: pytest.TempPathFactory,
        text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "agent.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, models)
    except ConfigError as error:
        _problems_name_paths(error)
