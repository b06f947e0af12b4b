"""The shipper's figures, from memory: cheap, and never waits on a file or a receiver.

Per-file series are bounded: the first `max_file_labels` files of an input get their own
`file` label, the rest are summed into `file="_other"` and counted (a glob can find many).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from agent.components import Collector
from agent.metrics import Accumulator
from plugins.logs import metrics as m
from plugins.logs.checkpoint import Checkpoints
from plugins.logs.outputs.base import Sender
from plugins.logs.pipeline import FileLag


class Input(Protocol):
    input: str
    read: int
    shipped: int
    duplicates: int
    lag: list[FileLag]
    checkpoints: Checkpoints

    def figures(self) -> dict[str, dict[str, int]]: ...


class LogsStats(Collector):
    blocking = False

    def __init__(self, inputs: Sequence[Input], senders: Sequence[Sender],
                 max_files: int) -> None:
        super().__init__("stats")
        self.inputs, self.senders, self.max_files = inputs, senders, max_files

    async def collect(self, out: Accumulator) -> None:
        for item in self.inputs:
            self._input(out, item)
        for sender in self.senders:
            self._output(out, sender)

    def _input(self, out: Accumulator, item: Input) -> None:
        name = item.input
        out.add(m.LINES_READ, item.read, input=name)
        out.add(m.LINES_QUEUED, item.shipped, input=name)
        out.add(m.DUPLICATES, item.duplicates, input=name)
        out.add(m.CHECKPOINT_CORRUPT, 1 if item.checkpoints.corrupt else 0, input=name)
        figures = item.figures()
        for rule, count in figures["redactions"].items():
            out.add(m.REDACTED, count, input=name, rule=rule)
        # Both reasons from the start: `rate()` over a series that appears later reads nothing.
        for reason, count in {"filtered": 0, "sampled": 0, **figures["dropped"]}.items():
            out.add(m.DROPPED, count, input=name, reason=reason)
        for kind, count in figures["rotations"].items():
            out.add(m.ROTATIONS, count, input=name, kind=kind)
        out.add(m.TRUNCATED, figures["truncated"].get("lines", 0), input=name)
        for reason, count in figures["errors"].items():
            out.add(m.FILE_ERRORS, count, input=name, reason=reason)
        if "over_limit" in figures["files"]:
            out.add(m.FILES_OVER_LIMIT, figures["files"]["over_limit"], input=name)
        self._lag(out, name, item.lag)

    def _lag(self, out: Accumulator, name: str, lag: list[FileLag]) -> None:
        out.add(m.FILES, len(lag), input=name)
        shown, rest = lag[:self.max_files], lag[self.max_files:]
        out.add(m.FILES_UNLABELLED, len(rest), input=name)
        for file in shown:
            out.add(m.LAG_BYTES, file.bytes, input=name, file=file.path)
            out.add(m.LAG_SECONDS, file.seconds, input=name, file=file.path)
        if rest:
            out.add(m.LAG_BYTES, sum(f.bytes for f in rest), input=name, file="_other")
            out.add(m.LAG_SECONDS, max(f.seconds for f in rest), input=name, file="_other")

    def _output(self, out: Accumulator, sender: Sender) -> None:
        name, outbox = sender.output, sender.box.outbox
        out.add(m.LINES_SHIPPED, sender.shipped, output=name)
        out.add(m.OUTPUT_UP, 1 if sender.up else 0, output=name)
        out.add(m.RESENT, sender.resent, output=name)
        for reason, count in sender.errors.items():
            out.add(m.OUTPUT_ERRORS, count, output=name, reason=reason)
        out.add(m.OUTBOX_BYTES, outbox.bytes, output=name)
        oldest = 0.0 if outbox.oldest is None else max(0.0, time.time() - outbox.oldest)
        out.add(m.OUTBOX_OLDEST, oldest, output=name)
        for reason in ("full", "expired", "corrupt"):
            out.add(m.OUTBOX_DROPPED, outbox.dropped[reason], output=name, reason=reason)
        out.add(m.OUTBOX_DROPPED, sender.rejected, output=name, reason="rejected")
        out.add(m.OUTBOX_DROPPED, sender.undecodable, output=name, reason="undecodable")
