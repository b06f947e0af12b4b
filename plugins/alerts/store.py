"""The engine's state file: written whole and atomically (temp file, fsync, rename, fsync of
the folder), so a crash leaves the previous state or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import msgspec
import structlog

from plugins.alerts.state import Alert

log = structlog.get_logger("inferwatch.alerts")
FILE = "alerts.json"
SCHEMA = 1


def save(folder: Path, alerts: list[dict[str, Any]]) -> None:
    """Raise OSError when the state cannot be written (the caller counts it)."""
    path = folder / FILE
    temp = path.with_suffix(".tmp")
    body = msgspec.json.encode({"schema": SCHEMA, "alerts": alerts})
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(body)
        while view:  # a short write (the disk filled) must not pass for the whole state
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    temp.replace(path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(folder: Path) -> list[Alert]:
    """The saved alerts; an unreadable or foreign file is set aside (logged), never fatal."""
    path = folder / FILE
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, msgspec.DecodeError) as exc:
        _set_aside(path, str(exc))
        return []
    items = raw.get("alerts") if isinstance(raw, dict) else None
    if not isinstance(items, list):  # valid JSON of another shape: as unreadable
        _set_aside(path, "not an object with a list of alerts")
        return []
    alerts = []
    for item in items:
        try:
            alerts.append(Alert.from_json(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("alert state entry ignored", error=f"{type(exc).__name__}: {exc}")
    return alerts


def _set_aside(path: Path, error: str) -> None:
    log.error("alert state unreadable; set aside, starting empty", path=str(path), error=error)
    with contextlib.suppress(OSError):
        path.replace(path.with_suffix(".corrupt"))
