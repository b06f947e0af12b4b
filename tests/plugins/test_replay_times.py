"""Replay's record times: whatever a file says, a time is either refused or one every window
bound derived from it can be written as a date."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.model import utc_timestamp
from plugins.ingest.pipeline import TS_MAX, parse_ts

YEAR = 365 * 86400.0


@given(st.one_of(st.none(), st.floats(), st.text(max_size=40),
                 st.floats().map(repr), st.datetimes().map(lambda d: d.isoformat())))
def test_a_time_is_refused_or_usable_as_a_date(text: str | float | None) -> None:
    ts = parse_ts(text)
    if ts is not None:
        assert 0.0 <= ts < TS_MAX
        utc_timestamp(ts + 1000 * YEAR)  # with the longest window a duration allows


def test_seconds_and_rfc3339_are_read() -> None:
    assert parse_ts(1_800_000_000.5) == 1_800_000_000.5
    assert parse_ts("1800000000") == 1_800_000_000.0
    assert parse_ts("2027-01-15T08:00:00Z") == 1_800_000_000.0
    assert parse_ts("2027-01-15T09:00:00+01:00") == 1_800_000_000.0
    assert parse_ts("2027-01-15T08:00:00") == 1_800_000_000.0  # naive: UTC
    assert parse_ts(1_800_000_000_000.0) is None  # milliseconds
