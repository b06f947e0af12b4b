"""Bit-for-bit comparison of results, for the tests that hold a fast path to a frozen one."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np


def same(got: Any, want: Any, where: str = "$") -> None:
    """Equal in type, key order and value: floats by their bits (NaN included), arrays by
    dtype and bytes, dicts by their keys in order."""
    assert type(got) is type(want), f"{where}: {type(got)} != {type(want)}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), f"{where}: {got!r} {want!r}"
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype, where
        assert got.tobytes() == want.tobytes(), where
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
