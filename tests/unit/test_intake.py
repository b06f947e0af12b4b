"""The core's sample intake: refusals, thread hand-off, counts, without the ingest plugin."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.intake import (
    MAX_RECORDS,
    NO_RECEIVER,
    STOPPED,
    TIMEOUT,
    TOO_MANY,
    IntakeMetrics,
    Record,
    SampleIntake,
    Submitted,
)


class Judge:
    """A receiver that rejects records equal to b"bad" and remembers its threads."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.seen: list[Record] = []

    def __call__(self, records: Sequence[Record]) -> list[str]:
        self.threads.append(threading.current_thread().name)
        self.seen += records
        return ["invalid_json" if r == b"bad" else "" for r in records]


def test_without_a_receiver_a_batch_is_refused_whole_and_counted() -> None:
    intake = SampleIntake()
    result = intake.submit("tailer", [b"{}", b"{}"])
    assert result == Submitted(0, 2, {NO_RECEIVER: 2}, NO_RECEIVER)
    assert intake.counts[("tailer", "refused:no_receiver")] == 2


def test_an_empty_batch_is_accepted_as_nothing() -> None:
    assert SampleIntake().submit("p", []) == Submitted()


async def test_on_the_loop_the_receiver_is_called_directly() -> None:
    intake, judge = SampleIntake(), Judge()
    intake.attach(judge)
    result = intake.submit("p", [b"ok", b"bad", {"model": "m"}])
    assert result == Submitted(2, 1, {"invalid_json": 1})
    assert judge.threads == [threading.current_thread().name]
    assert (intake.counts[("p", "accepted")], intake.counts[("p", "rejected")]) == (2, 1)


async def test_from_a_thread_the_batch_is_judged_on_the_loop() -> None:
    intake, judge = SampleIntake(), Judge()
    intake.attach(judge)
    result = await asyncio.to_thread(intake.submit, "p", [b"ok", b"bad"])
    assert result == Submitted(1, 1, {"invalid_json": 1})
    assert judge.threads == [threading.current_thread().name]  # the loop's thread


async def test_too_many_records_are_refused_before_reaching_the_receiver() -> None:
    intake, judge = SampleIntake(), Judge()
    intake.attach(judge)
    result = intake.submit("p", [b"ok"] * (MAX_RECORDS + 1))
    assert (result.refused, result.rejected) == (TOO_MANY, MAX_RECORDS + 1)
    assert judge.seen == []


async def test_a_busy_loop_times_the_caller_out_and_the_late_batch_is_not_taken() -> None:
    intake, judge = SampleIntake(), Judge()
    intake.attach(judge)
    answered = threading.Event()
    results: list[Submitted] = []

    def caller() -> None:
        results.append(intake.submit("p", [b"ok"], timeout=0.01))
        answered.set()

    thread = threading.Thread(target=caller)
    thread.start()
    assert answered.wait(5)  # blocks the loop until the caller has given up
    thread.join()
    await asyncio.sleep(0)  # the queued hand-off runs now, and finds it cancelled
    assert results == [Submitted(0, 1, {TIMEOUT: 1}, TIMEOUT)]
    assert judge.seen == []


async def test_a_receiver_detached_while_a_batch_waits_refuses_it_as_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    intake, judge = SampleIntake(), Judge()
    intake.attach(judge)
    loop = asyncio.get_running_loop()
    queued = threading.Event()
    schedule = loop.call_soon_threadsafe

    def spy(*args: Any) -> asyncio.Handle:
        handle = schedule(*args)
        queued.set()
        return handle

    monkeypatch.setattr(loop, "call_soon_threadsafe", spy)
    results: list[Submitted] = []
    thread = threading.Thread(target=lambda: results.append(intake.submit("p", [b"ok"])))
    thread.start()
    assert queued.wait(5)  # the loop is held here: the hand-off is queued, not yet run
    intake.detach(judge)
    await asyncio.to_thread(thread.join, 5)
    assert results == [Submitted(0, 1, {STOPPED: 1}, STOPPED)]
    assert judge.seen == []


async def test_detach_leaves_a_newer_receiver_attached() -> None:
    intake, old, new = SampleIntake(), Judge(), Judge()
    intake.attach(old)
    intake.attach(new)
    intake.detach(old)
    assert intake.submit("p", [b"ok"]).accepted == 1
    assert (old.seen, new.seen) == ([], [b"ok"])


async def test_the_counts_are_exported_by_plugin_outcome_and_reason() -> None:
    intake = SampleIntake()
    intake.submit("files", [b"x"] * 3)
    intake.attach(Judge())
    intake.submit("files", [b"ok", b"bad"])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(IntakeMetrics(intake))
    text = generate_latest(registry).decode()
    assert 'inferwatch_plugin_records_refused_total{plugin="files",reason="no_receiver"} 3.0' \
        in text
    assert 'inferwatch_plugin_records_submitted_total{outcome="accepted",plugin="files"} 1.0' \
        in text
    assert 'inferwatch_plugin_records_submitted_total{outcome="rejected",plugin="files"} 1.0' \
        in text


def test_nothing_submitted_exports_no_family() -> None:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(IntakeMetrics(SampleIntake()))
    assert b"records_submitted" not in generate_latest(registry)


def test_a_batch_taken_as_the_wait_runs_out_is_waited_for_not_sent_twice() -> None:
    from concurrent.futures import Future  # noqa: PLC0415

    from agent.intake import _wait  # noqa: PLC0415

    taken: Future[list[str]] = Future()
    assert taken.set_running_or_notify_cancel()  # the loop is judging it
    timer = threading.Timer(0.05, taken.set_result, [["", "no_model"]])
    timer.start()
    assert _wait(taken, 0.001) == ["", "no_model"]
    never: Future[list[str]] = Future()
    with pytest.raises(TimeoutError):
        _wait(never, 0.001)
    assert never.cancelled()  # so the loop will not judge it after all
