"""State files written whole or not at all: on a disk that fills during the write, the
previous file stays (a short write() was taken for a whole one, and the truncated file
replaced the good one: the alerts or the log offsets were lost at the next start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.alerts import store
from plugins.logs.checkpoint import Checkpoints
from tests.diskfull import fill, small_fs

__all__ = ["small_fs"]  # the fixture, used by name below

ROOM = 64 << 10  # left free on the filesystem: less than the new state


def test_the_alert_state_is_not_replaced_by_a_short_write(small_fs: Path) -> None:
    store.save(small_fs, [{"alertname": "Old", "n": 1}])
    before = (small_fs / store.FILE).read_bytes()
    fill(small_fs, ROOM)
    big = [{"alertname": f"A{i}", "text": "x" * 1000} for i in range(400)]  # ~400 KB
    with pytest.raises(OSError):  # noqa: PT011 - ENOSPC, whatever its text
        store.save(small_fs, big)
    assert (small_fs / store.FILE).read_bytes() == before


def test_log_checkpoints_are_not_replaced_by_a_short_write(small_fs: Path) -> None:
    path = small_fs / "logs" / "checkpoints.json"
    points = Checkpoints(path)
    points.load()
    points.forget([])  # writes the (empty) state
    before = path.read_bytes()
    fill(small_fs, ROOM)
    pending = {f"{'9' * 1000}:{i}": i for i in range(400)}  # ~400 KB
    with pytest.raises(OSError):  # noqa: PT011
        points.begin(pending)
    assert path.read_bytes() == before
