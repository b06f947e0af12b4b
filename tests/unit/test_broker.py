"""One broker-settings type (agent.broker.Broker) behind both MQTT clients: `[plugins.mqtt]`
(its keys flat in the section) and `[plugins.ingest.mqtt]` (a table of its own) accept the
same keys as before and validate them alike, with the stricter of the two former rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.broker import Broker
from agent.config import build_config
from agent.errors import ConfigError
from plugins.ingest.config import IngestConfig
from plugins.mqtt.config import MqttConfig

MODELS = {"mqtt": MqttConfig, "ingest": IngestConfig}
BROKER_KEYS = {"host", "port", "client_id", "username", "password", "tls", "ca_file",
               "cert_file", "key_file", "tls_verify"}
# The keys each section accepted before the shared type (so no user sees a change).
MQTT_KEYS = {"enabled", "interval", "timeout", "protocol", "qos", "topic_prefix", "keepalive",
             "max_payload_bytes", "inflight", "window", "ack_timeout", "outbox_max_bytes",
             "outbox_max_age", "outbox_sync", *BROKER_KEYS,
             "match", "min_severity", "durable"}  # every sink's routing keys (docs/sinks.md)
INGEST_KEYS = {"topics", "qos", "max_payload_bytes", *BROKER_KEYS}


def _section(where: str, keys: dict[str, Any]) -> dict[str, Any]:
    """`keys` in [plugins.mqtt] or in [plugins.ingest.mqtt]."""
    if where == "mqtt":
        return {"plugins": {"mqtt": {"enabled": True, **keys}}}
    return {"plugins": {"ingest": {"enabled": True, "mqtt": keys}}}


def _problems(where: str, keys: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(_section(where, keys), MODELS, base_dir=tmp_path)
    return caught.value.problems


def _broker(where: str, keys: dict[str, Any], tmp_path: Path) -> Broker:
    plugins = build_config(_section(where, keys), MODELS, base_dir=tmp_path).plugins
    mqtt, ingest = plugins["mqtt"], plugins["ingest"]
    assert isinstance(mqtt, MqttConfig)
    assert isinstance(ingest, IngestConfig)
    if where == "mqtt":
        return mqtt.broker
    assert ingest.mqtt is not None
    return ingest.mqtt


def test_each_section_accepts_the_keys_it_did() -> None:
    def known(where: str) -> set[str]:
        (problem,) = _problems(where, {"bogus": 1}, Path())
        return set(problem.split("(known: ")[1].rstrip(")").split(", "))

    assert known("mqtt") == MQTT_KEYS
    assert known("ingest") == INGEST_KEYS


@pytest.mark.parametrize("where", ["mqtt", "ingest"])
def test_a_ca_file_without_tls_is_refused_in_both(where: str, tmp_path: Path) -> None:
    """Only [plugins.mqtt] refused it: ingest connected in clear and ignored the CA file."""
    (tmp_path / "ca.pem").write_text("x")
    path = "plugins.mqtt" if where == "mqtt" else "plugins.ingest.mqtt"
    assert _problems(where, {"ca_file": "ca.pem"}, tmp_path) == [
        f"{path}.tls: ca_file/cert_file are set but tls = false"]


@pytest.mark.parametrize("where", ["mqtt", "ingest"])
@pytest.mark.parametrize(("keys", "problem"), [
    ({"tls": True, "cert_file": "c.pem"}, "key_file: cert_file and key_file go together"),
    ({"password": {"env": "IW_BROKER_PW"}}, "username: a password needs a username"),
    ({"port": 70000}, "port: Expected `int` <= 65535"),
])
def test_both_sections_validate_alike(where: str, keys: dict[str, Any], problem: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IW_BROKER_PW", "pw")
    (tmp_path / "c.pem").write_text("x")
    path = "plugins.mqtt" if where == "mqtt" else "plugins.ingest.mqtt"
    assert _problems(where, keys, tmp_path) == [f"{path}.{problem}"]


def test_the_field_name_is_not_a_key(tmp_path: Path) -> None:
    """`[plugins.mqtt] broker = {...}` is not a way in: the keys sit in the section."""
    (problem,) = _problems("mqtt", {"broker": {"host": "x"}}, tmp_path)
    assert problem.startswith("plugins.mqtt.broker: unknown key")


@given(host=st.sampled_from(["127.0.0.1", "broker.example", "::1"]),
       port=st.integers(0, 65535), client_id=st.text("abc-_1", max_size=8),
       username=st.none() | st.sampled_from(["u", "svc"]), tls=st.booleans(),
       tls_verify=st.booleans())
def test_the_same_keys_make_the_same_broker(host: str, port: int, client_id: str,
                                            username: str | None, tls: bool,
                                            tls_verify: bool) -> None:
    keys: dict[str, Any] = {"host": host, "port": port, "client_id": client_id, "tls": tls,
                            "tls_verify": tls_verify}
    if username is not None:
        keys["username"] = username
    mqtt, ingest = _broker("mqtt", keys, Path()), _broker("ingest", keys, Path())
    fields = [f.name for f in msgspec.structs.fields(Broker)]
    assert [getattr(mqtt, f) for f in fields] == [getattr(ingest, f) for f in fields]
    assert mqtt.broker_port == (port or (8883 if tls else 1883)) == ingest.broker_port
    assert (mqtt.tls_context() is None) == (not tls)
