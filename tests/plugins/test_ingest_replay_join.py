"""Replay's in-memory label join: every label ends in exactly one outcome, by the rule."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Label, Sample
from plugins.ingest.replay import MemoryJoin
from plugins.ingest.windows import WindowStage

TTL = 10.0
T0 = 1_800_000_000.0


def _expected(ops: list[tuple[bool, int, float]]) -> Counter[str]:
    """The rule, stated plainly (times in order)."""
    predicted: dict[int, tuple[float, bool]] = {}  # request -> (time, labelled)
    waiting: dict[int, float] = {}
    out: Counter[str] = Counter()
    for is_sample, rid, t in ops:
        if is_sample:
            predicted[rid] = (t, False)
            if rid in waiting:
                came = waiting.pop(rid)
                if t - came <= TTL:
                    out["joined"] += 1
                    predicted[rid] = (t, True)
                else:
                    out["unmatched"] += 1
        elif rid in predicted:
            at, labelled = predicted[rid]
            if t - at > TTL:
                out["expired"] += 1
            else:
                out["duplicate" if labelled else "joined"] += 1
                predicted[rid] = (at, True)
        else:
            out["duplicate"] += rid in waiting
            waiting[rid] = t
    out["unmatched"] += len(waiting)
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6), st.floats(0, 8)), max_size=40))
def test_every_label_ends_in_one_outcome_by_the_rule(
        ops: list[tuple[bool, int, float]]) -> None:
    timeline, t = [], T0
    for is_sample, rid, step in ops:  # increasing times, some steps past the TTL
        t += step * 2
        timeline.append((is_sample, rid, t))
    stage = WindowStage({}, ["1000d"], label_wait=TTL)
    join = MemoryJoin(TTL, stage)
    for is_sample, rid, ts in timeline:
        join.now = ts
        record: Sample | Label
        if is_sample:
            record = Sample(model="m", request_id=f"r{rid}", prediction=1, ts=ts)
            stage.add(record, ts, ts)
        else:
            record = Label(model="m", request_id=f"r{rid}", label=0, ts=ts)
        join.add(record)
    join.finish()
    assert +join.counts == +_expected(timeline)
    assert join.counts.total() == sum(not s for s, _, _ in timeline)
