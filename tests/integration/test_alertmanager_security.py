"""The Alertmanager sink over TLS with basic auth, against a real Alertmanager's web config."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, poll, value
from tests.integration.alertmanager_helpers import Alertmanager, Receiver

pytestmark = pytest.mark.integration
PASSWORD = "am-s3cret-pw"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    paths = {n: folder / n for n in ("ca.crt", "ca.key", "other.crt", "other.key", "server.key",
                                     "server.csr", "server.crt", "san.ext")}
    for name in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 f"/CN={name}", "-keyout", str(paths[f"{name}.key"]),
                 "-out", str(paths[f"{name}.crt"]))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(paths["server.key"]), "-out", str(paths["server.csr"]))
    paths["san.ext"].write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(paths["server.csr"]), "-CA", str(paths["ca.crt"]),
             "-CAkey", str(paths["ca.key"]), "-CAcreateserial", "-days", "1",
             "-extfile", str(paths["san.ext"]), "-out", str(paths["server.crt"]))
    return paths


@pytest.fixture
def secure_am(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Alertmanager]:
    receiver = Receiver()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = (f"tls_server_config:\n  cert_file: {pki['server.crt']}\n"
           f"  key_file: {pki['server.key']}\nbasic_auth_users:\n  agent: '{hashed}'\n")
    server = Alertmanager(tmp_path / "am", receiver.port, web_config=web, ca=pki["ca.crt"],
                          auth=("agent", PASSWORD)).start()
    yield server
    server.stop()
    receiver.close()


def _agent(write_config: ConfigWriter, agent_factory, tmp_path: Path, am: Alertmanager,
           ca: Path, password: str) -> AgentProcess:
    (tmp_path / "am-password").write_text(password + "\n")
    config, http = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.alerter]\nmarker = "{tmp_path / "alert"}"\n'
        f'[plugins.alertmanager]\nenabled = true\nurls = ["{am.url}"]\ninterval = "1s"\n'
        f'username = "agent"\npassword = {{ file = "am-password" }}\nca_file = "{ca}"\n')
    agent = agent_factory(config, http, "-p", "iwtest.alerter")
    (tmp_path / "alert").write_text(json.dumps({"alertname": "Secure"}) + "\n")
    return agent


def test_tls_and_basic_auth_deliver(write_config, agent_factory, tmp_path, secure_am,
                                    pki) -> None:
    _agent(write_config, agent_factory, tmp_path, secure_am, pki["ca.crt"], PASSWORD)
    poll(lambda: [a["labels"]["alertname"] for a in secure_am.alerts()] == ["Secure"],
         what="the alert over TLS with basic auth")


def test_wrong_password_is_counted_and_never_logged(write_config, agent_factory, tmp_path,
                                                   secure_am, pki) -> None:
    wrong = "not-the-pw-xyz"
    agent = _agent(write_config, agent_factory, tmp_path, secure_am, pki["ca.crt"], wrong)
    poll(lambda: (value(agent.scrape(), "inferwatch_alertmanager_errors_total",
                        url=secure_am.url, reason="http_4xx") or 0) > 0, what="401 counted")
    assert value(agent.scrape(), "inferwatch_alertmanager_pending", url=secure_am.url) == 1
    assert wrong not in agent.log()
    assert secure_am.alerts() == []


def test_an_unknown_ca_is_a_tls_error(write_config, agent_factory, tmp_path, secure_am,
                                      pki) -> None:
    agent = _agent(write_config, agent_factory, tmp_path, secure_am, pki["other.crt"], PASSWORD)
    poll(lambda: (value(agent.scrape(), "inferwatch_alertmanager_errors_total",
                        url=secure_am.url, reason="tls") or 0) > 0, what="TLS failure counted")
    assert PASSWORD not in agent.log()
