"""sd_notify without systemd: the test owns NOTIFY_SOCKET and reads what the agent says."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter

pytestmark = pytest.mark.integration


def _collect(sock: socket.socket, seconds: float, until=None) -> list[str]:
    """Messages for `seconds`, or until `until(messages)` holds (then failing if it never does)."""
    deadline, seen = time.monotonic() + seconds, []
    while time.monotonic() < deadline:
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if until is not None and until(seen):
            return seen
    if until is not None:
        raise AssertionError(f"notify messages never matched; saw {seen}")
    return seen


def test_ready_status_and_watchdog_that_stops_when_the_loop_is_wedged(
        write_config: ConfigWriter, agent_factory, notify_socket, tmp_path: Path) -> None:
    sock, path = notify_socket
    marker = tmp_path / "wedge"
    config, port = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.alerts]\nenabled = false\n'
        f'[plugins.wedger]\ninterval = "100ms"\n'
        f'timeout = "100ms"\nmarker = "{marker}"\n')
    agent = agent_factory(config, port, "-p", "iwtest.common:wedger",
                          env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    seen = _collect(sock, 10, lambda s: sum("WATCHDOG=1" in m for m in s) >= 3)
    ready = next(m for m in seen if "READY=1" in m)
    assert "STATUS=running: 1 plugins, 1/1 components up" in ready
    assert f"MAINPID={agent.proc.pid}" in ready

    marker.touch()  # the wedger now blocks the event loop itself
    assert _silence(sock, "WATCHDOG=1", quiet=1.0, within=6.0), "pings went on while wedged"

    marker.unlink()
    _collect(sock, 5, lambda s: any("WATCHDOG=1" in m for m in s))
    assert agent.stop() == 0
    assert any("STOPPING=1" in m for m in _collect(sock, 0.3))


def _silence(sock: socket.socket, text: str, quiet: float, within: float) -> bool:
    """True once `text` has not arrived for `quiet` seconds, checked until `within`."""
    deadline = time.monotonic() + within
    last = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() - last >= quiet:
            return True
        try:
            if text in sock.recv(4096).decode():
                last = time.monotonic()
        except TimeoutError:
            continue
    return False
