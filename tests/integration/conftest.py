"""Fixtures the MQTT integration tests share: a real mosquitto and a persistent subscriber."""

from __future__ import annotations

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
