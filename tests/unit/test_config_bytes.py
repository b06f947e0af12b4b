"""Whatever bytes a config file holds, loading it gives a Config or a ConfigError: never a crash."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_config
from agent.errors import ConfigError

VALID = b'[agent]\nlog_level = "info"\n'


def _load(data: bytes) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agent.toml"
        path.write_bytes(data)
        try:
            load_config(path, {})
        except ConfigError as exc:
            return "\n".join(exc.problems)
    return "ok"


def test_a_latin1_comment_names_the_line_and_the_byte() -> None:
    problems = _load(VALID + "# caf\u00e9\n".encode("latin-1"))
    assert problems.endswith("line 3: not UTF-8 (byte 0xe9); TOML files must be UTF-8, "
                             "comments included")


def test_nesting_too_deep_is_a_config_error() -> None:
    assert _load(b"a = " + b"[" * 5000 + b"]" * 5000).endswith("invalid TOML: nested too deeply")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(noise: bytes) -> None:
    assert _load(VALID + noise)


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    assert _load(VALID + text.encode("utf-8", "surrogatepass"))


def test_a_secret_file_that_is_not_utf8_is_named_without_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"p\xe4ssw\xf6rd")
    config = tmp_path / "agent.toml"
    config.write_text('[prometheus]\nlisten = "127.0.0.1:1"\n[plugins.mqtt]\n'
                      'username = "u"\npassword = {file = "secret"}\n')
    from plugins.mqtt.config import MqttConfig  # noqa: PLC0415 - a plugin's model

    with pytest.raises(ConfigError) as refused:
        load_config(config, {"mqtt": MqttConfig})
    secret = tmp_path / "secret"
    assert refused.value.problems == [f"plugins.mqtt.password: secret file {secret} is not UTF-8"]


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert _load(b"\xef\xbb\xbf" + VALID) == "ok"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_says_so(encoding: str) -> None:
    data = VALID.decode().encode(encoding)
    if encoding != "utf-16":
        data = ("\ufeff" + VALID.decode()).encode(encoding)
    assert _load(data).endswith("UTF-16 (PowerShell's `>` writes it): save it as UTF-8")
