"""From raw lines to what ships: JSON lines parsed, filters, debug sampling, redaction.

A plain line is kept as it is (redaction aside). A JSON object line is parsed for its level,
timestamp, message and other fields; when redaction changes one of its values the object is
encoded again (so it stays valid JSON), otherwise its bytes ship untouched. Invalid UTF-8
bytes survive the round trip (surrogateescape).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agent.redact import Redactor

LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level")
TIME_KEYS = ("timestamp", "ts", "time", "@timestamp", "t")
MESSAGE_KEYS = ("message", "msg", "event", "log")
DEBUG_LEVELS = frozenset({"debug", "trace", "dbg", "verbose"})
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Record:
    line: bytes  # what ships, redacted
    level: str = ""  # lower case; "" when unknown
    timestamp: str = ""
    message: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def parse_json(line: bytes) -> dict[str, Any] | None:
    if not line.startswith(b"{"):
        return None
    try:
        obj = _decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def describe(obj: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """(level, timestamp, message, the other fields) of a JSON log object."""
    level = _first(obj, LEVEL_KEYS).lower()
    stamp, message = _first(obj, TIME_KEYS), _first(obj, MESSAGE_KEYS)
    used = {*LEVEL_KEYS, *TIME_KEYS, *MESSAGE_KEYS}
    return level, stamp, message, {k: v for k, v in obj.items() if k not in used}


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    return ""


class Shaper:
    """One input's filters, sampling and redaction; counts what it drops, by reason."""

    def __init__(self, redactor: Redactor, *, parse: str, keep: list[str], drop: list[str],
                 debug_per_second: float) -> None:
        self.redactor, self.parse = redactor, parse
        self.keep = [re.compile(p.encode()) for p in keep]
        self.drop = [re.compile(p.encode()) for p in drop]
        self.rate = debug_per_second
        self._tokens, self._filled = debug_per_second, time.monotonic()
        self.dropped: Counter[str] = Counter()

    def shape(self, line: bytes) -> Record | None:
        if self.keep and not any(p.search(line) for p in self.keep):
            self.dropped["filtered"] += 1
            return None
        if self.drop and any(p.search(line) for p in self.drop):
            self.dropped["filtered"] += 1
            return None
        obj = parse_json(line) if self.parse != "none" else None
        record = self._json(line, obj) if obj is not None else Record(self._plain(line))
        if self.rate and record.level in DEBUG_LEVELS and not self._admit():
            self.dropped["sampled"] += 1
            return None
        return record

    def _plain(self, line: bytes) -> bytes:
        if not self.redactor:
            return line
        text = line.decode("utf-8", "surrogateescape")
        out = self.redactor.redact(text)
        return line if out is text or out == text else out.encode("utf-8", "surrogateescape")

    def _json(self, line: bytes, obj: dict[str, Any]) -> Record:
        level, stamp, message, fields = describe(obj)
        if self.redactor:
            clean = self.redactor.redact_value(obj)
            if clean != obj:
                line = _encoder.encode(clean)
                level, stamp, message, fields = describe(clean)
        return Record(line, level, stamp, message, fields)

    def _admit(self) -> bool:
        """A token bucket of `rate` debug lines a second (a burst of one second's worth)."""
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._filled) * self.rate)
        self._filled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
