"""Config parsing: durations, listen addresses, secrets, and every error with its path."""

from __future__ import annotations

import socket
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import (
    MAX_DURATION,
    PluginConfig,
    Secret,
    build_config,
    parse_duration,
    parse_listen,
)
from agent.errors import ConfigError


class WithSecret(PluginConfig):
    password: Secret | None = None


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_duration_units(n: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if n == 0 or n * scale > MAX_DURATION:
        with pytest.raises(ValueError, match="positive and at most 1000 years"):
            parse_duration(f"{n}{unit}")
    else:
        assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59))
def test_duration_compound_matches_sum(h: int, m: int, s: int) -> None:
    text = f"{h}h{m}m{s}s"
    expected = h * 3600 + m * 60 + s
    if expected == 0:
        with pytest.raises(ValueError, match="positive"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected


@given(st.text(max_size=12))
def test_duration_never_crashes_on_text(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except ValueError as exc:
        message = str(exc)
        assert "duration" in message
    else:
        assert parsed > 0


@pytest.mark.parametrize("bad", [True, None, [], {}, -1, 0, float("nan"), float("inf"), "1x",
                                 "99999999999999999999d", "366001d", 1e300])
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|seconds"):
        parse_duration(bad)


@given(st.integers(1, 65535))
def test_listen_v4_and_v6(port: int) -> None:
    assert parse_listen(f"127.0.0.1:{port}") == ("127.0.0.1", port)
    assert parse_listen(f"[::1]:{port}") == ("::1", port)


@pytest.mark.parametrize("bad", ["", "localhost", "1.2.3.4:0", "1.2.3.4:65536", "h:p", ":-1"])
def test_listen_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(bad)


def test_defaults_are_loopback_and_valid(tmp_path: Path) -> None:
    config = build_config({}, {"x": PluginConfig})
    assert config.prometheus.listen == "127.0.0.1:9879"
    assert config.plugins["x"].interval == 10.0
    assert config.plugins["x"].timeout == 5.0
    assert build_config({"plugins": {"x": {"interval": 2}}}, {"x": PluginConfig}
                        ).plugins["x"].timeout == 2.0


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IW_PW", "hunter2")
    (tmp_path / "pw").write_text("s3cret\n")
    env = build_config({"plugins": {"x": {"password": {"env": "IW_PW"}}}}, {"x": WithSecret})
    secret = env.plugins["x"].password  # type: ignore[attr-defined]
    assert secret.reveal() == "hunter2"
    assert "hunter2" not in repr(env)
    file = build_config({"plugins": {"x": {"password": {"file": "pw"}}}}, {"x": WithSecret},
                        base_dir=tmp_path)
    assert file.plugins["x"].password.reveal() == "s3cret"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("raw", "message"), [
    ("literal", "not a literal"),
    ({"env": "IW_SURELY_UNSET"}, "environment variable IW_SURELY_UNSET is not set"),
    ({"file": "/nonexistent/pw"}, "cannot read secret file /nonexistent/pw"),
    ({"env": "A", "file": "B"}, "not a literal"),
])
def test_secret_errors(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"plugins": {"x": {"password": raw}}}, {"x": WithSecret})
    (problem,) = info.value.problems
    assert problem.startswith("plugins.x.password: ")
    assert message in problem


def test_all_errors_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({
            "agent": {"log_level": "loud", "nope": 1},
            "prometheus": {"listen": "x", "basic_auth_users": {"bob": "plain"}},
            "extra": {},
            "plugins": {"x": {"interval": "1s", "timeout": "2s"}, "y": 1},
        }, {"x": PluginConfig})
    assert info.value.problems == [
        "agent.log_level: must be one of 'debug', 'info', 'warning', 'error'",
        "agent.nope: unknown key (known: host_id, state_dir, log_level, log_format, "
        "event_queue_size, start_timeout, stop_timeout, cpu_percent, rss_bytes, budget_period)",
        "extra: unknown section (known: agent, prometheus, plugins)",
        "plugins.x.timeout: timeout (2s) must not exceed interval (1s)",
        "plugins.y: no plugin named 'y' (installed: x)",
        "prometheus.listen: listen must be HOST:PORT with a port 1-65535, got 'x'",
    ]


def test_bcrypt_hash_required() -> None:
    with pytest.raises(ConfigError, match=r"basic_auth_users.bob: not a bcrypt hash"):
        build_config({"prometheus": {"basic_auth_users": {"bob": "plain"}}}, {})
    good = "$2b$04$" + "a" * 53
    assert build_config({"prometheus": {"basic_auth_users": {"bob": good}}}, {})


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_ulid_matches_the_specification(ms: int, random: bytes) -> None:
    """Our fast encoding equals the spec's: 26 Crockford digits of (48-bit ms << 80) | random."""
    from unittest import mock  # noqa: PLC0415

    from agent.model import CROCKFORD, new_ulid  # noqa: PLC0415

    now = ms / 1000
    value = (int(now * 1000) << 80) | int.from_bytes(random, "big")  # as new_ulid reads `now`
    expected = "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
    with mock.patch("agent.model.os.urandom", return_value=random):
        assert new_ulid(now) == expected


def test_an_error_inside_a_table_or_list_names_the_key() -> None:
    class Files(PluginConfig):
        files: dict[str, str] = msgspec.field(default_factory=dict)
        tags: list[int] = msgspec.field(default_factory=list)

    with pytest.raises(ConfigError) as err:
        build_config({"plugins": {"f": {"files": {"ok": "a", "fraud": 3}, "tags": [1, "x"]}}},
                     {"f": Files})
    assert err.value.problems == ["plugins.f.files.fraud: Expected `str`, got `int`",
                                  "plugins.f.tags[1]: Expected `int`, got `str`"]


def test_host_id_comes_from_the_environment_before_the_hostname(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import AgentSection  # noqa: PLC0415

    monkeypatch.setenv("INFERWATCH_HOST_ID", "node-17")
    assert AgentSection().host_id == "node-17"
    assert AgentSection(host_id="set").host_id == "set"
    monkeypatch.delenv("INFERWATCH_HOST_ID")
    assert AgentSection().host_id == socket.gethostname()
