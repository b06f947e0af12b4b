"""Multi-line records (Python tracebacks, Java stack traces) joined by a start pattern.

A line matching `start` begins a record; the lines that follow and do not match belong to
it. The record ships when the next one starts, or `timeout` after its last line (the writer
may be done). A continuation with no record open ships alone. A record's end offset is its
last line's, so a checkpoint never passes a record still being gathered.
"""

from __future__ import annotations

import re

from plugins.logs.tail import TRUNCATED_MARK, Line


class Joiner:
    def __init__(self, start: str, timeout: float, max_bytes: int) -> None:
        self.start = re.compile(start.encode("utf-8", "surrogateescape"))
        self.timeout, self.max_bytes = timeout, max_bytes
        self.truncated = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._end = 0
        self._since = 0.0

    @property
    def holding(self) -> bool:
        return bool(self._parts)

    def feed(self, lines: list[Line], now: float) -> list[Line]:
        out: list[Line] = []
        for data, end in lines:
            if self.start.search(data):
                if self._parts:
                    out.append(self._take())
                self._parts, self._size = [data], len(data)
            elif self._parts:
                self._parts.append(data)
                self._size += len(data) + 1
            else:
                out.append((data, end))
                continue
            self._end, self._since = end, now
        return out

    def due(self, now: float) -> list[Line]:
        """The record held, if no line came for `timeout`."""
        if self._parts and now - self._since >= self.timeout:
            return [self._take()]
        return []

    def _take(self) -> Line:
        record = b"\n".join(self._parts)
        if len(record) > self.max_bytes:
            self.truncated += 1
            record = record[:self.max_bytes] + TRUNCATED_MARK
        self._parts, self._size = [], 0
        return record, self._end
