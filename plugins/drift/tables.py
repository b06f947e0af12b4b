"""Lookup tables of the drift statistics' terms, per window size, for every reference and
feature of the process under one budget in bytes (least recently used out first).

A small count window repeats one size, so its Jensen-Shannon, PSI and chi-square terms can
be looked up instead of worked out. Kept per feature, the tables grew with the features,
the window sizes and the references (200 categorical features held 146 MiB); here they
share one bound, and each entry counts at least MIN_ENTRY bytes, so the owners they keep
alive are few as well.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

BUDGET = 8 << 20  # bytes of tables kept in all
MIN_ENTRY = 64 << 10  # what an entry counts at least (its owner stays alive with it)


class Tables:
    """Thread-safe: a large window's statistics run in a worker thread."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget, self.used = budget, 0
        self._kept: OrderedDict[tuple[int, Hashable], tuple[object, Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, owner: object, key: Hashable) -> Any | None:
        with self._lock:
            slot = (id(owner), key)
            found = self._kept.get(slot)
            if found is None or found[0] is not owner:  # the entry keeps its owner alive
                return None
            self._kept.move_to_end(slot)
            return found[1]

    def put(self, owner: object, key: Hashable, value: Any, size: int) -> None:
        size = max(size, MIN_ENTRY)
        if size > self.budget:
            return
        with self._lock:
            slot = (id(owner), key)
            old = self._kept.pop(slot, None)
            if old is not None:
                self.used -= old[2]
            self._kept[slot] = (owner, value, size)
            self.used += size
            while self.used > self.budget:
                _, (_, _, dropped) = self._kept.popitem(last=False)
                self.used -= dropped

    def __len__(self) -> int:
        return len(self._kept)


TABLES = Tables()
