"""A small filesystem for disk-full tests: a size-limited tmpfs, unmounted afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE = 8 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs; skipped where mounting is not permitted (not root, a container)."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path, leave: int) -> Path:
    """Take all but about `leave` bytes of the filesystem with one file; delete it to free."""
    stat = os.statvfs(where)
    ballast = where / "ballast"
    with ballast.open("wb") as out:
        out.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return ballast
