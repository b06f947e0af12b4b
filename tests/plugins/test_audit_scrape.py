"""The scrape check against real listeners: the agent's, one that demands auth, a port taken
by something else, and a free port before the agent runs."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit import AuditContext
from agent.config import build_config
from plugins.audit.integration import prometheus_check

HASH = "$2b$04$" + "x" * 53  # shape only: the check never verifies a password


def _ctx(tmp_path: Path, listen: str, **prometheus: object) -> AuditContext:
    raw = {"agent": {"state_dir": str(tmp_path)}, "prometheus": {"listen": listen, **prometheus}}
    return AuditContext(config=build_config(raw, {}), timeout=2.0)


class _Reply(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b"inferwatch_build_info 1\n"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Unauthorised(_Reply):
    status = 401


@pytest.fixture(params=[_Reply, _Unauthorised])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], request.param.status
    httpd.shutdown()
    httpd.server_close()


def test_a_listening_agent_is_scraped(tmp_path: Path, server: tuple[int, int]) -> None:
    port, status = server
    auth = {"basic_auth_users": {"prometheus": HASH}} if status == 401 else {}
    check = prometheus_check(_ctx(tmp_path, f"127.0.0.1:{port}", **auth))
    assert check.status == "pass"
    if status == 401:
        assert check.value == f"http://127.0.0.1:{port}/metrics: HTTP 401 (basic auth configured)"
        # Without auth configured, a 401 means something else holds the port.
        assert prometheus_check(_ctx(tmp_path, f"127.0.0.1:{port}")).status == "fail"
    else:
        assert check.value == f"http://127.0.0.1:{port}/metrics: HTTP 200, 24 bytes"


def test_before_the_agent_runs_a_free_port_passes(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = prometheus_check(_ctx(tmp_path, f"127.0.0.1:{port}"))
    assert check.status == "pass"
    assert check.value == f"agent not running; 127.0.0.1:{port} is free to listen on"


def test_every_interface_without_auth_warns(tmp_path: Path, server: tuple[int, int]) -> None:
    port, status = server
    if status == 200:
        check = prometheus_check(_ctx(tmp_path, f"0.0.0.0:{port}"))
        assert check.status == "warn"
        assert check.value.endswith("; on every interface without basic auth")


def test_a_port_held_by_something_else_fails(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: refused, and not bindable
        port = holder.getsockname()[1]
        check = prometheus_check(_ctx(tmp_path, f"127.0.0.1:{port}"))
    assert check.status == "fail"
    assert check.value == (f"agent not answering and 127.0.0.1:{port} unavailable: "
                           "Address already in use")
