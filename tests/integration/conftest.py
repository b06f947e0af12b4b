"""Fixtures the MQTT integration tests share: a real mosquitto and a persistent subscriber."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import poll
from tests.integration.mqtt_helpers import PREFIX, Mosquitto, Subscriber


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "broker").start()
    yield server
    server.stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    poll(sub.client.is_connected, what="subscriber connected")
    yield sub
    sub.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """The NOTIFY_SOCKET systemd would own: a datagram socket the test reads."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    yield sock, path
    sock.close()
