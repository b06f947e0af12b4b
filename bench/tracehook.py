"""Run the agent with a bench-only memory probe: where does its RSS go?

Only the soak uses this (`bench/soak.py --trace DIR`); the agent itself knows nothing of it.
SIGUSR2 writes DIR/snap-<n>.pickle (a tracemalloc snapshot, when tracing) and
DIR/threads-<n>.txt (every thread's stack); SIGUSR1 appends one line to DIR/heap.jsonl:
glibc's heap (mallinfo2: in use, free inside the arenas, mmapped), SQLite's own allocator
(sqlite3_status64) and, when tracing, what Python allocated. RSS minus these is code,
stacks and the arenas' untouched pages.

    python -X tracemalloc=12 bench/tracehook.py DIR run -c agent.toml
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import json
import runpy
import signal
import sys
import threading
import time
import traceback
import tracemalloc
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
COUNT = [0]


def dump(folder: Path) -> None:
    """One snapshot and the live threads' stacks, numbered in order."""
    COUNT[0] += 1
    n = COUNT[0]
    gc.collect()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(folder / f"snap-{n}.pickle"))
    frames = sys._current_frames()
    with (folder / f"threads-{n}.txt").open("w") as out:
        for thread in threading.enumerate():
            out.write(f"--- {thread.name} daemon={thread.daemon}\n")
            frame = frames.get(thread.ident or -1)
            if frame is not None:
                out.write("".join(traceback.format_stack(frame)))


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@functools.cache
def _libs() -> tuple[ctypes.CDLL | None, ctypes.CDLL | None]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        libc = None
    try:
        import _sqlite3  # noqa: F401, PLC0415 - loads the same libsqlite3 the agent uses
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    except OSError:
        sqlite = None
    return libc, sqlite


def heap(folder: Path) -> None:
    """One line of heap figures, in bytes."""
    libc, sqlite = _libs()
    row: dict[str, float] = {"time": time.time()}
    if libc is not None:
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        row |= {"arena": info.arena, "in_use": info.uordblks, "free": info.fordblks,
                "mmapped": info.hblkhd, "keepcost": info.keepcost}
    if sqlite is not None:
        current, high = ctypes.c_int64(), ctypes.c_int64()
        sqlite.sqlite3_status64(0, ctypes.byref(current), ctypes.byref(high), 0)
        row |= {"sqlite": current.value, "sqlite_high": high.value}
    row["blocks"] = sys.getallocatedblocks()  # Python objects alive (pymalloc's own arenas)
    if tracemalloc.is_tracing():
        row["python"] = tracemalloc.get_traced_memory()[0]
    status = Path("/proc/self/status").read_text()
    row["rss"] = int(status.split("VmRSS:")[1].split()[0]) * 1024
    with (folder / "heap.jsonl").open("a") as out:
        out.write(json.dumps(row) + "\n")


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)

    def handler(_sig: int, _frame: FrameType | None) -> None:
        dump(folder)

    signal.signal(signal.SIGUSR2, handler)
    signal.signal(signal.SIGUSR1, lambda _sig, _frame: heap(folder))
    sys.argv = ["agent", *sys.argv[2:]]
    runpy.run_module("agent", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
