"""glibc malloc as `inferwatch run` sets it: two arenas however many threads, and big blocks
returned to the kernel when freed (the soak's RSS crept ~2 MiB/h without both)."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from agent.process import MALLOC_ARENAS, MALLOC_VARIABLES

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2"),
    reason="glibc >= 2.33 only (mallinfo2)")

# Twelve threads allocate while all alive, as the agent's collectors and workers do; then a
# 4 MiB block is freed and a 1 MiB one taken. Prints (arenas, how the 1 MiB block was served).
PROBE = """
import ctypes, ctypes.util, json, os, sys, tempfile, threading
from agent import process
if sys.argv[1] == "prepared":
    process.prepare()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(13)
def work():
    keep = [bytes(2000) for _ in range(100)]
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads:
    t.start()
barrier.wait()
path = tempfile.mktemp()
out = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
arenas = open(path).read().count("<heap nr=")
os.unlink(path)
barrier.wait()
for t in threads:
    t.join()
big = bytearray(4 << 20)
del big
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
mapped = libc.mallinfo2().hblkhd - before
print(json.dumps([arenas, mapped >= 1 << 20]))
"""


def _probe(mode: str) -> tuple[int, bool]:
    env = {k: v for k, v in os.environ.items()
           if k not in {*MALLOC_VARIABLES, "GLIBC_TUNABLES"}}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env=env, check=True, timeout=60).stdout
    arenas, mapped = json.loads(out)
    return int(arenas), bool(mapped)


def test_every_thread_shares_two_arenas_after_prepare() -> None:
    arenas, _ = _probe("prepared")
    assert arenas == MALLOC_ARENAS
    plain, _ = _probe("plain")
    assert plain > MALLOC_ARENAS  # glibc alone: one per thread, up to 8 per core


def test_a_freed_big_block_does_not_raise_the_mmap_threshold() -> None:
    """glibc alone serves the 1 MiB block from an arena after a 4 MiB one was freed (dynamic
    threshold): its pages stay resident when freed. Prepared, it is mapped and returned."""
    assert _probe("prepared")[1] is True
    assert _probe("plain")[1] is False


@pytest.mark.parametrize(("name", "value", "applied"), [
    ("MALLOC_ARENA_MAX", "4", "False"),
    ("MALLOC_MMAP_THRESHOLD_", "65536", "False"),
    ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4", "False"),
    ("GLIBC_TUNABLES", "glibc.pthread.rseq=0", "True"),  # not about malloc: ours still apply
])
def test_an_operators_malloc_setting_wins(name: str, value: str, applied: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {*MALLOC_VARIABLES, "GLIBC_TUNABLES"}} | {name: value}
    out = subprocess.run([sys.executable, "-c",
                          "from agent import process; print(process.bound_malloc())"],
                         capture_output=True, text=True, env=env, check=True, timeout=60)
    assert out.stdout.strip() == applied
