"""What the monitor boundary costs: `plain()` over a window's results, per window.

Every window goes through `process_window` once per monitor, which converts what the
monitor left in `window.results` to plain Python. This times that conversion on the results
the built-in quality and drift monitors leave for binary, multiclass and regression windows
of 600 rows (groups, cost, CBPE, a reference: every section filled; the windows and
config of tests/contract/test_monitor_output.py), beside the window's
own JSON encoding (what `replay` does with it next) in the same run.

    .venv/bin/python bench/plain_output.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.plain import plain
from plugins.ingest.replay import window_line
from tests.contract import test_monitor_output as contract


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print("| task | sections | JSON bytes | plain() µs / window | JSON encode µs / window |")
    print("|---|---|---|---|---|")
    for task in ("binary", "multi", "regress"):
        monitors = contract._monitors(tmp, contract._reference(tmp))
        for monitor in monitors:
            monitor.replaying = True  # type: ignore[attr-defined]
        windows = contract._windows(task)
        for window in windows:
            for monitor in monitors:
                await monitor.process(window)
        results = plain(windows[-1].results)
        line = window_line(windows[-1])
        conv, enc = _time(results, line)
        print(f"| {task} | {len(results)} | {len(msgspec.json.encode(line))} | "
              f"{conv:.0f} | {enc:.0f} |")


def _time(results: dict[str, Any], line: dict[str, Any], runs: int = 2000
          ) -> tuple[float, float]:
    """Microseconds per window: the boundary's conversion, and the line's JSON encoding."""
    conv = timeit.timeit(lambda: {k: plain(v) for k, v in results.items()}, number=runs)
    enc = timeit.timeit(lambda: msgspec.json.encode(line), number=runs)
    return conv / runs * 1e6, enc / runs * 1e6


if __name__ == "__main__":
    asyncio.run(main())
