"""Process-wide settings for `inferwatch run`, made before anything heavy is imported.

- BLAS and OpenMP pools: one thread. numpy's OpenBLAS otherwise starts a thread per core at
  import (64 on a 64-core GPU host), which alone exhausts the unit's `TasksMax`; the agent's
  numeric work is small vectorised passes that gain nothing from them.
- The event loop's default executor (`asyncio.to_thread`: monitors, DNS lookups, reloads) is
  bounded, not `min(32, cores + 4)`, so the thread count does not grow with the host.
- `faulthandler`: a fatal signal (systemd's watchdog sends SIGABRT) prints every thread's
  stack, so the journal shows what blocked the loop.
- glibc malloc (`bound_malloc`): two arenas, not 8 per core, and a fixed mmap threshold. The
  agent's ~27 threads spread over up to 8 arenas per core, and after the first large block was
  freed glibc raised its mmap threshold (up to 32 MiB), so later window arrays, scrape bodies
  and outbox batches were carved from those arenas and left resident holes: RSS crept up for
  hours (the soak: ~2 MiB/h after warm-up), a step with each thread started late.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import faulthandler
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

# Each library reads its own variable, and only when it is first loaded.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
DEFAULT_EXECUTOR_THREADS = 4
MALLOC_ARENAS = 2  # the main arena and one that every other thread shares
MMAP_THRESHOLD = 128 << 10  # glibc's default, kept fixed: larger blocks go back on free
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt(3) parameters
MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")


def prepare() -> None:
    """Call first in `run`: numpy must not have been imported yet (a plugin imports it only
    when enabled). An operator's own setting of a variable wins."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr, all_threads=True)
    bound_malloc()


def bound_malloc() -> bool:
    """Cap glibc's arenas and fix its mmap threshold; True if set. Call while the process has
    one thread (the cap binds arenas made after it). Not on another libc, and not when the
    operator tuned malloc through the environment: their setting wins."""
    if (any(name in os.environ for name in MALLOC_VARIABLES)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt, or no such arenas
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
                and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def bound_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    """A bounded default executor with all its threads started now. ThreadPoolExecutor starts
    one only when every other is busy, so the count rose whenever a rare overlap happened
    (the MQTT reconnect's connect beside a drift window): 27 -> 28 threads 51 minutes into
    the hour's soak. Started up front, the count is flat from the start."""
    pool = ThreadPoolExecutor(DEFAULT_EXECUTOR_THREADS, thread_name_prefix="inferwatch-pool")
    loop.set_default_executor(pool)
    # Each task waits for the others, so none is idle when the next is submitted: the pool
    # starts a thread per task. Nothing waits on them; a broken barrier only ends the task.
    barrier = threading.Barrier(DEFAULT_EXECUTOR_THREADS)
    for _ in range(DEFAULT_EXECUTOR_THREADS):
        pool.submit(_meet, barrier)


def _meet(barrier: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(5.0)

