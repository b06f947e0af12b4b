"""Replay's window lines: a section handed again as the same object is encoded once, and the
bytes never differ from encoding the line whole."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.ingest.replay import Lines

LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
SECTION = st.dictionaries(st.text(max_size=4), st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=3), inner, max_size=3), max_leaves=8), max_size=4)


@settings(max_examples=200, deadline=None)
@given(sections=st.lists(SECTION, min_size=1, max_size=6),
       picks=st.lists(st.integers(0, 5), min_size=1, max_size=20))
def test_a_line_encodes_to_the_bytes_of_the_whole_line(sections: list[dict[str, Any]],
                                                      picks: list[int]) -> None:
    lines = Lines(kept=3)
    for pick in picks:  # the same section objects again and again, some evicted between
        drift = sections[pick % len(sections)]
        line = {"type": "window", "metrics": {"f1": 0.5}, "drift": drift}
        want = msgspec.json.encode(line).decode() + "\n"
        assert lines.encode(line) == want
        assert len(lines.sections) <= 3


def test_the_same_section_is_encoded_once_and_a_new_one_is_not_taken_for_it() -> None:
    lines = Lines()
    drift: dict[str, Any] = {"features": {"x": {"ks": 0.25}}}
    first = lines.encode({"type": "window", "final": False, "drift": drift})
    (held, raw), = lines.sections.values()
    assert held is drift
    again = lines.encode({"type": "window", "final": True, "drift": drift})
    assert lines.sections[id(drift)][1] is raw  # reused, not encoded again
    assert first.replace("false", "true") == again
    other = {"features": {"x": {"ks": 0.75}}}  # equal keys, other values: its own bytes
    assert '"ks":0.75' in lines.encode({"type": "window", "drift": other})
    assert len(lines.sections) == 2
