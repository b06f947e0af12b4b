"""Recorded data files (samples, labels, training data): plain or gzip-compressed.

In the core because more than one plugin reads recordings (`inferwatch replay`,
`inferwatch reference build`) and a plugin imports only the core and itself.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO


def open_lines(path: Path) -> IO[bytes]:
    """A plain or gzip-compressed file, by its magic number."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    raw.seek(0)
    return raw
