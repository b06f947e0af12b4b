"""TLS with verification, a wrong CA, and a wrong password, against one real mosquitto."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, poll, value
from tests.integration.mqtt_helpers import PREFIX, Mosquitto, Subscriber
from tests.integration.test_mqtt import _agent, _emit

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN={name}", "-keyout", str(key), "-out", str(cert))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca(folder, "ca")
    other, _ = _ca(folder, "other-ca")
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(folder / "san.ext"),
             "-out", str(cert))
    passwords = folder / "passwords"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "agent", "s3cret"],
                   check=True, capture_output=True)
    return {"ca": ca, "other": other, "cert": cert, "key": key, "passwords": passwords,
            "folder": folder}


@pytest.fixture
def secure(tmp_path: Path, pki: dict[str, Path]) -> Iterator[dict[str, object]]:
    plain, tls, auth = free_port(), free_port(), free_port()
    listeners = (
        f"per_listener_settings true\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {tls} 127.0.0.1\nallow_anonymous true\ncafile {pki['ca']}\n"
        f"certfile {pki['cert']}\nkeyfile {pki['key']}\n"
        f"listener {auth} 127.0.0.1\nallow_anonymous false\npassword_file {pki['passwords']}\n")
    broker = Mosquitto(tmp_path / "broker", plain, listeners).start()
    sub = Subscriber(plain, f"{PREFIX}/#")
    poll(sub.client.is_connected, what="subscriber")
    yield {"plain": plain, "tls": tls, "auth": auth, "sub": sub}
    sub.close()
    broker.stop()


def test_tls_with_verification_delivers(write_config, agent_factory, tmp_path, secure, pki):
    agent = _agent(write_config, agent_factory, tmp_path, secure["tls"],
                   f'tls = true\nca_file = "{pki["ca"]}"\n')
    sub = secure["sub"]
    poll(lambda: sub.payloads("/status")[-1:] == [b"online"], what="online over TLS")  # type: ignore[attr-defined]
    _emit(tmp_path, 3)
    poll(lambda: len([e for e in sub.events() if e["kind"] == "test.burst"]) == 3,  # type: ignore[attr-defined]
         what="events over TLS")
    poll(lambda: value(agent.scrape(), "inferwatch_mqtt_connected") == 1, what="connected")


def test_wrong_ca_is_refused_without_plaintext_fallback(write_config, agent_factory,
                                                         tmp_path, secure, pki):
    agent = _agent(write_config, agent_factory, tmp_path, secure["tls"],
                   f'tls = true\nca_file = "{pki["other"]}"\n')
    poll(lambda: (value(agent.scrape(), "inferwatch_mqtt_connect_errors_total",
                        reason="tls") or 0) >= 1, what="TLS failure counted")
    assert value(agent.scrape(), "inferwatch_mqtt_connected") == 0
    assert value(agent.scrape(), "inferwatch_mqtt_connects_total") == 0
    assert '"reason": "tls"' in agent.log()
    assert "CERTIFICATE_VERIFY_FAILED" in agent.log()
    assert secure["sub"].payloads("/status") == []  # type: ignore[attr-defined]


def test_wrong_password_is_clear_and_retried(write_config, agent_factory, tmp_path, secure):
    (tmp_path / "pw").write_text("hunter2-not-this\n")
    agent = _agent(write_config, agent_factory, tmp_path, secure["auth"],
                   f'username = "agent"\npassword = {{file = "{tmp_path / "pw"}"}}\n')
    poll(lambda: (value(agent.scrape(), "inferwatch_mqtt_connect_errors_total",
                        reason="auth") or 0) >= 2, 15, what="auth failures retried")
    assert agent.log().count("MQTT broker unreachable") == 1, "one line, not one per retry"
    assert '"reason": "auth"' in agent.log()
    assert "hunter2-not-this" not in agent.log(), "the password never reaches the log"
    assert value(agent.scrape(), "inferwatch_mqtt_connected") == 0
