"""Process-wide settings for `inferwatch run`, made before anything heavy is imported.

- BLAS and OpenMP pools: one thread. numpy's OpenBLAS otherwise starts a thread per core at
  import (64 on a 64-core GPU host), which alone exhausts the unit's `TasksMax`; the agent's
  numeric work is small vectorised passes that gain nothing from them.
- The event loop's default executor (`asyncio.to_thread`: monitors, DNS lookups, reloads) is
  bounded, not `min(32, cores + 4)`, so the thread count does not grow with the host.
- `faulthandler`: a fatal signal (systemd's watchdog sends SIGABRT) prints every thread's
  stack, so the journal shows what blocked the loop.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
from concurrent.futures import ThreadPoolExecutor

# Each library reads its own variable, and only when it is first loaded.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
DEFAULT_EXECUTOR_THREADS = 4


def prepare() -> None:
    """Call first in `run`: numpy must not have been imported yet (a plugin imports it only
    when enabled). An operator's own setting of a variable wins."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr, all_threads=True)


def bound_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_default_executor(ThreadPoolExecutor(DEFAULT_EXECUTOR_THREADS,
                                                 thread_name_prefix="inferwatch-pool"))

