"""Every reload ends in READY=1 with the old or the new configuration whole, /metrics up."""

from __future__ import annotations

import base64
import signal
import socket
import threading
import time
import urllib.error

import bcrypt
import pytest

from tests.conftest import ConfigWriter
from tests.helpers import AgentProcess, free_port, http_get, parse_metrics, poll, run_cli, value

pytestmark = pytest.mark.integration
RELOADED = "inferwatch_config_last_reload_successful"


def _messages(sock: socket.socket, until: str, seconds: float = 15.0) -> list[str]:
    """Datagrams until one contains `until`; fail at the deadline."""
    deadline, seen = time.monotonic() + seconds, []
    while time.monotonic() < deadline:
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if until in seen[-1]:
            return seen
    raise AssertionError(f"no {until!r} from the agent; saw {seen}")


def _start(write_config: ConfigWriter, agent_factory, notify_socket, body: str = "",
           prometheus: str = "") -> AgentProcess:
    sock, path = notify_socket
    config, port = write_config(f"[plugins.host]\nenabled = false\n{body}",
                                prometheus=prometheus)
    agent = agent_factory(config, port, env={"NOTIFY_SOCKET": path})
    _messages(sock, "READY=1")
    return agent


def _reload(agent: AgentProcess, sock: socket.socket) -> None:
    """SIGHUP; RELOADING=1 must be followed by READY=1."""
    agent.signal(signal.SIGHUP)
    seen = _messages(sock, "RELOADING=1")
    seen += _messages(sock, "READY=1")
    assert "STATUS=running" in seen[-1]


def _scrape(port: int, **headers: str) -> dict:
    return parse_metrics(http_get(f"http://127.0.0.1:{port}/metrics", headers=headers))


def test_a_config_that_is_not_utf8_is_refused_and_ready_follows(
        write_config: ConfigWriter, agent_factory, notify_socket) -> None:
    agent = _start(write_config, agent_factory, notify_socket)
    with agent.config.open("ab") as fh:
        fh.write("# caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    _reload(agent, notify_socket[0])
    assert value(agent.scrape(), RELOADED) == 0
    assert "not UTF-8 (byte 0xe9)" in agent.log()
    assert agent.proc.poll() is None
    result = run_cli("check", "-c", str(agent.config))
    assert result.returncode == 78, result.stderr
    assert f"{agent.config}: line " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_keeps_the_old_listener_then_a_free_one_replaces_it(
        write_config: ConfigWriter, agent_factory, notify_socket) -> None:
    agent = _start(write_config, agent_factory, notify_socket)
    old = agent.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        agent.config.write_text(agent.config.read_text().replace(f":{old}", f":{taken}"))
        _reload(agent, notify_socket[0])
        assert value(_scrape(old), RELOADED) == 0, "the old listener still serves"
        assert f"cannot listen on 127.0.0.1:{taken}" in agent.log()

    fresh = free_port()
    agent.config.write_text(agent.config.read_text().replace(f":{taken}", f":{fresh}"))
    _reload(agent, notify_socket[0])
    assert value(_scrape(fresh), RELOADED) == 1
    with pytest.raises(urllib.error.URLError):
        http_get(f"http://127.0.0.1:{old}/metrics", timeout=2)
    assert agent.proc.poll() is None


def test_new_users_on_the_same_port_apply_without_a_gap(
        write_config: ConfigWriter, agent_factory, notify_socket) -> None:
    agent = _start(write_config, agent_factory, notify_socket)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
    failures: list[str] = []
    done = threading.Event()

    def scrape_all_along() -> None:
        while not done.is_set():
            try:
                _scrape(agent.port, **auth)
            except (OSError, urllib.error.URLError) as exc:
                failures.append(repr(exc))

    scraper = threading.Thread(target=scrape_all_along)
    scraper.start()
    try:
        poll(lambda: value(_scrape(agent.port), RELOADED) == 1, what="first scrape")
        agent.config.write_text(agent.config.read_text().replace(
            "[plugins.host]", f'[prometheus.basic_auth_users]\nprom = "{hashed}"\n'
                              "[plugins.host]"))
        _reload(agent, notify_socket[0])
    finally:
        done.set()
        scraper.join()
    assert failures == [], "a scrape failed during the reload"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(agent.port)
    assert refused.value.code == 401
    refused.value.close()
    assert value(_scrape(agent.port, **auth), RELOADED) == 1
