"""kill -9 at any point: no line lost, duplicates bounded by one batch and counted.

A writer appends numbered lines (and rotates the file once) while the real agent ships them
to a file output and is killed with SIGKILL at random moments, then restarted.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import poll
from tests.logs.harness import Shipper, numbered, redacted

TOTAL = 60_000
KILLS = 6
BURST = 2_000

pytestmark = pytest.mark.integration


def writer(log: Path, stop: threading.Event) -> None:
    """TOTAL lines in bursts, renaming the file away halfway (rename-and-create)."""
    written = 0
    while written < TOTAL and not stop.is_set():
        if written == TOTAL // 2:
            log.rename(log.with_name("app.log.1"))
        with log.open("ab") as f:
            f.write(numbered(written, BURST))
        written += BURST
        time.sleep(0.05)


@pytest.mark.timeout(180)  # six restarts of the agent on a loaded machine
def test_kill_9_loses_nothing_and_counts_duplicates(tmp_path: Path) -> None:
    rng = random.Random(1)
    shipper = Shipper(tmp_path, glob="app.log*")
    log = tmp_path / "in" / "app.log"
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(log, stop), daemon=True)
    counted = 0.0
    try:
        shipper.start()
        thread.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.05, 0.5))
            counted += _possible_duplicates(shipper)
            shipper.kill()
            shipper.start()
        thread.join(60)
        expected = redacted(numbered(0, TOTAL))
        poll(lambda: _unique(shipper.received()) >= TOTAL, 60, what="every line received")
        counted += _possible_duplicates(shipper)
    finally:
        stop.set()
        shipper.stop()
    got = shipper.received().splitlines()
    seen = Counter(got)
    assert set(seen) == set(expected.splitlines())  # nothing lost, nothing invented
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= counted  # every duplicate was counted
    assert counted <= KILLS * 2 * 20_000  # one input batch + one output read per kill
    assert _in_order(got)


def _possible_duplicates(shipper: Shipper) -> float:
    """Duplicates the running agent reported (input re-reads + output resends)."""
    def figures() -> tuple[float, float] | None:
        dup = shipper.metric("inferwatch_logs_duplicates_total", input="app")
        resent = shipper.metric("inferwatch_logs_resent_total", output="file")
        return (dup, resent) if dup >= 0 and resent >= 0 else None
    dup, resent = poll(figures, what="duplicate counters")
    return dup + resent


def _unique(data: bytes) -> int:
    return len(set(data.splitlines()))


def _in_order(lines: list[bytes]) -> bool:
    """Each file's lines arrive in order: after dropping repeats, numbers only grow
    (both files' numbers grow, and the old file is drained before the new one's start is
    read only when their ranges do not overlap, so order by number within each half)."""
    numbers = [int(m[1]) for line in lines if (m := re.match(rb"line (\d+)", line))]
    first, out = set(), []
    for n in numbers:
        if n not in first:
            first.add(n)
            out.append(n)
    halves = ([n for n in out if n < TOTAL // 2], [n for n in out if n >= TOTAL // 2])
    return all(h == sorted(h) for h in halves)
