"""The refusal bookkeeping: held topics, growing retry delays, bounded reason labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plugins.mqtt.refusals import REASONS, Refusals, reason_name

ROWS = [(1, "t/a", b""), (2, "t/b", b""), (3, "t/a", b""), (4, "t/c", b"")]


def test_a_refused_topic_is_held_until_its_retry_then_sent_again() -> None:
    refusals = Refusals()
    assert refusals.sendable(ROWS) == ROWS
    refusals.refuse(1, "t/a", 0x87, now=100.0)
    assert refusals.accepted(ROWS) == [2, 3, 4]
    assert refusals.totals == {"not_authorized": 1}
    assert refusals.sendable(ROWS) == [ROWS[1], ROWS[3]]  # t/a waits
    assert refusals.retry_at is not None
    assert 100.5 <= refusals.retry_at <= 101.0  # the first delay: 0.5-1 s
    assert not refusals.retry_due(100.4)
    assert refusals.retry_due(101.0)
    assert refusals.sendable(ROWS) == ROWS  # released for the pass from the start


def test_delays_grow_while_refusals_last_and_reset_after_a_clean_pass() -> None:
    refusals, now, delays = Refusals(), 0.0, []
    for _ in range(4):
        refusals.sendable(ROWS)
        refusals.refuse(1, "t/a", 0x97, now)
        assert refusals.retry_at is not None
        delays.append(refusals.retry_at - now)
        now = refusals.retry_at
        refusals.caught_up()  # refused since the last retry: the episode goes on
        assert refusals.retry_due(now)
    assert delays[3] >= 4 * delays[0] / 2  # equal jitter: 0.5-1, 1-2, 2-4, 4-8
    refusals.sendable(ROWS)
    refusals.caught_up()  # a whole pass without a refusal
    refusals.refuse(1, "t/a", 0x97, now)
    assert refusals.retry_at is not None
    assert refusals.retry_at - now <= 1.0


@given(st.integers(0, 255))
def test_reason_labels_are_bounded(code: int) -> None:
    assert reason_name(code) in {*REASONS.values(), "other"}
