"""Samples and labels from any plugin into ingestion, without the core importing it.

The ingest plugin attaches itself as the receiver when it starts and detaches when it stops;
every other plugin submits through `PluginContext.submit()`. Records take the path the Unix
socket's take (decode, validation, sampling, the late-label join, the windows), because the
receiver is that path. While no receiver is attached (ingest disabled, or restarting on a
reload) a submission is refused whole, with a reason, and counted: nothing is queued here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# One JSON record per item: a line of NDJSON (bytes or str, no newline needed) or a dict.
Record = bytes | str | Mapping[str, Any]
# Called on the receiver's event loop; returns one reason per record, "" for each accepted.
Receiver = Callable[[Sequence[Record]], list[str]]

MAX_RECORDS = 5000  # per call: one call holds the event loop for a few milliseconds at most
WAIT_SECONDS = 30.0  # a submission from another thread waits this long for the loop

NO_RECEIVER = "no_receiver"  # ingestion is not enabled (or is restarting)
TOO_MANY = "too_many_records"  # more than MAX_RECORDS in one call
TIMEOUT = "timeout"  # the event loop did not take the batch in time (nor will it: retry)
STOPPED = "stopped"  # the receiver went away while the batch waited


@dataclass(frozen=True)
class Submitted:
    """What became of one submission.

    `refused` is set (to one of the reasons above) when the batch never reached ingestion:
    the caller may retry it later. Otherwise each record was judged on its own: `rejected`
    counts those unusable or refused by ingestion, `reasons` says why, by reason.
    """

    accepted: int = 0
    rejected: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)
    refused: str = ""

    @classmethod
    def judged(cls, verdicts: Sequence[str]) -> Submitted:
        why = Counter(v for v in verdicts if v)
        return cls(len(verdicts) - why.total(), why.total(), dict(why))

    @classmethod
    def refusal(cls, reason: str, count: int) -> Submitted:
        return cls(0, count, {reason: count} if count else {}, reason)


class SampleIntake:
    """The one hand-off point between sample sources and ingestion (one per agent)."""

    def __init__(self) -> None:
        self._receiver: tuple[Receiver, asyncio.AbstractEventLoop | None] | None = None
        self._lock = threading.Lock()
        # (plugin, outcome) -> records: accepted, rejected, or refused:<reason>
        self.counts: Counter[tuple[str, str]] = Counter()

    @property
    def attached(self) -> bool:
        return self._receiver is not None

    def attach(self, receiver: Receiver) -> None:
        """Make `receiver` the target of every submission; call on its event loop. Attached
        outside any loop (agent.testing), it is called in the submitting thread."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._receiver = (receiver, loop)

    def detach(self, receiver: Receiver) -> None:
        """Stop sending to `receiver` (a no-op if another one has replaced it)."""
        with self._lock:
            if self._receiver is not None and self._receiver[0] == receiver:
                self._receiver = None

    def submit(self, plugin: str, records: Sequence[Record],
               timeout: float = WAIT_SECONDS) -> Submitted:
        """Hand `records` to ingestion from any thread; see Submitted for the answer."""
        target = self._receiver
        if len(records) > MAX_RECORDS:
            result = Submitted.refusal(TOO_MANY, len(records))
        elif not records:
            result = Submitted()
        elif target is None:
            result = Submitted.refusal(NO_RECEIVER, len(records))
        else:
            result = self._deliver(target, records, timeout)
        self._count(plugin, result)
        return result

    def _deliver(self, target: tuple[Receiver, asyncio.AbstractEventLoop | None],
                 records: Sequence[Record], timeout: float) -> Submitted:
        receiver, loop = target
        if loop is None or _on_loop(loop):
            return Submitted.judged(receiver(records))
        future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._run_on_loop, receiver, records, future)
        except RuntimeError:  # the loop is closed: the agent is stopping
            return Submitted.refusal(STOPPED, len(records))
        try:
            return Submitted.judged(_wait(future, timeout))
        except concurrent.futures.TimeoutError:
            return Submitted.refusal(TIMEOUT, len(records))
        except (concurrent.futures.CancelledError, _DetachedError):
            return Submitted.refusal(STOPPED, len(records))

    def _run_on_loop(self, receiver: Receiver, records: Sequence[Record],
                     future: concurrent.futures.Future[list[str]]) -> None:
        if not future.set_running_or_notify_cancel():
            return  # the caller gave up waiting: it was told "timeout"
        current = self._receiver
        if current is None or current[0] != receiver:
            future.set_exception(_DetachedError())  # detached while the batch was queued
            return
        try:
            future.set_result(receiver(records))
        except Exception as exc:  # noqa: BLE001 - handed to the submitting thread, which raises it
            future.set_exception(exc)

    def _count(self, plugin: str, result: Submitted) -> None:
        with self._lock:
            if result.refused:
                self.counts[(plugin, f"refused:{result.refused}")] += result.rejected
                return
            self.counts[(plugin, "accepted")] += result.accepted
            self.counts[(plugin, "rejected")] += result.rejected


class _DetachedError(Exception):
    pass


def _wait(future: concurrent.futures.Future[list[str]], timeout: float) -> list[str]:
    """The verdicts; TimeoutError only if the loop never took the batch (then it never
    will, so sending it again cannot count it twice)."""
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if future.cancel():
            raise
    return future.result()  # taken just as the wait ran out: being judged now


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class IntakeMetrics(Collector):
    """The intake's counts on the agent's registry, rendered at scrape time."""

    def __init__(self, intake: SampleIntake) -> None:
        self.intake = intake

    def collect(self) -> Iterator[Metric]:
        submitted = CounterMetricFamily(
            "inferwatch_plugin_records_submitted_total",
            "Samples and labels plugins submitted into ingestion, by outcome (accepted, "
            "rejected: unusable or refused by ingestion, reasons in "
            "inferwatch_samples_rejected_total).", labels=("plugin", "outcome"))
        refused = CounterMetricFamily(
            "inferwatch_plugin_records_refused_total",
            "Submitted records that never reached ingestion, by reason (no_receiver, "
            "too_many_records, timeout, stopped).", labels=("plugin", "reason"))
        with self.intake._lock:
            counts = list(self.intake.counts.items())
        for (plugin, outcome), value in counts:
            family, label = (refused, outcome[8:]) if outcome.startswith("refused:") \
                else (submitted, outcome)
            family.add_metric((plugin, label), value)
        yield from (family for family in (submitted, refused) if family.samples)
