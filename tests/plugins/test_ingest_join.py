"""The late-label join: either order, corrections, restarts, TTL and bounds."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent.model import Label, Sample
from plugins.ingest.join import LabelJoin
from plugins.ingest.stage import HINT_EVERY, JoinStage


def _store(path: Path, ttl: float = 100.0, max_waiting: int = 1000) -> LabelJoin:
    store = LabelJoin(path / "labels.db", ttl=ttl, max_waiting=max_waiting)
    store.open()
    return store


def _s(rid: str, prediction: int = 1, model: str = "m") -> Sample:
    return Sample(model=model, request_id=rid, prediction=prediction, features={"x": 1.5})


def _l(rid: str, label: int = 0, model: str = "m") -> Label:
    return Label(model=model, request_id=rid, label=label)


def test_label_after_prediction_and_before(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.add([_s("a"), _l("b", 1)], now=0) == []
    joined = store.add([_l("a"), _s("b")], now=1)
    assert [(j.sample.request_id, j.label.label, j.replaces) for j in joined] == [
        ("a", 0, False), ("b", 1, False)]
    assert joined[0].sample == Sample(model="m", request_id="a", prediction=1), \
        "the prediction comes back without its features (the store keeps what a join needs)"
    assert store.waiting("labels") == 0


def test_repeated_label_replaces_the_earlier_one(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add([_s("a"), _l("a", 0)], now=0)
    (again,) = store.add([_l("a", 1)], now=1)
    assert (again.label.label, again.replaces) == (1, True)
    store.add([_l("z", 0), _l("z", 1)], now=1)  # waiting labels: the newest wins
    (late,) = store.add([_s("z")], now=2)
    assert late.label.label == 1


def test_join_survives_a_restart(tmp_path: Path) -> None:
    first = _store(tmp_path)
    first.add([_s("a")], now=0)
    first.close()
    second = _store(tmp_path)
    (pair,) = second.add([_l("a")], now=5)
    assert pair.sample.request_id == "a"


def test_ttl_counts_expired_predictions_and_unmatched_labels(tmp_path: Path) -> None:
    store = _store(tmp_path, ttl=10)
    store.add([_s("a"), _s("b"), _l("c")], now=0)
    store.add([_l("b")], now=5)
    store.expire(now=11)
    assert store.counts["expired_predictions"] == 1  # "a"; "b" was joined
    assert store.counts["unmatched_labels"] == 1
    assert store.waiting() == 0
    assert store.add([_l("a")], now=12) == [], "too late: it waits, unmatched"


def test_every_label_is_counted_by_outcome(tmp_path: Path) -> None:
    """joined, duplicate (joined again, or a waiting one replaced), expired (its prediction
    older than the TTL when it came), unmatched (waited past the TTL)."""
    store = _store(tmp_path, ttl=10)
    store.add([_s("a"), _s("b"), _s("old")], now=0)
    store.add([_l("a"), _l("a", 1), _l("w"), _l("w", 1), _l("never")], now=1)
    store.add([_s("w")], now=2)  # the waiting (newest) label joins
    assert store.add([_l("old")], now=10.5) == [], "its prediction is past the TTL"
    store.expire(now=12)
    counts = {k: store.counts[f"labels_{k}"] for k in ("joined", "duplicate", "expired")}
    assert counts == {"joined": 2, "duplicate": 2, "expired": 1}
    assert store.counts["unmatched_labels"] == 1  # "never"
    store.add([_l("late")], now=20)
    store.add([_s("late")], now=31)  # the label waited 11 s: past the TTL, it does not join
    assert store.counts["labels_joined"] == 2


def test_the_agent_names_label_ttl_when_most_labels_come_too_late(tmp_path: Path) -> None:
    store = _store(tmp_path, ttl=10)
    stage = JoinStage(store, queue_size=100)
    store.add([_s(f"r{i}") for i in range(10)], now=0)
    store.add([_l("r0"), _l("r1")], now=5)  # in time
    store.add([_l(f"r{i}") for i in range(2, 10)], now=9 + 180 * 86400)  # six months late
    with capture_logs() as logs:
        stage.hint(now=100.0)
        stage.hint(now=101.0)  # nothing new since
        store.add([_s("x")], now=0)
        store.add([_l("x"), _l("y")], now=1000)  # expired, and one that will wait in vain
        store.expire(now=2000)
        stage.hint(now=200.0)  # within the hour: quiet
        store.add([_l("z")], now=3000)
        store.expire(now=4000)
        stage.hint(now=100.0 + HINT_EVERY)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["missed"], e["labels"]) for e in warnings] == [(8, 10), (1, 1)]
    assert "label_ttl" in warnings[0]["event"]
    assert warnings[0]["label_ttl_seconds"] == 10
    stage._worker.close()


def test_bounded_oldest_first(tmp_path: Path) -> None:
    store = _store(tmp_path, max_waiting=3)
    for n in range(5):
        store.add([_s(f"r{n}")], now=n)
    store.expire(now=0)
    assert store.waiting() == 3
    assert store.counts["dropped_predictions"] == 2
    assert store.add([_l("r0")], now=6) == []
    assert len(store.add([_l("r4")], now=6)) == 1


def _expected_joins(ops: list[tuple[bool, int, int]]) -> int:
    """The rule, stated plainly: a label joins if a prediction came first; labels that came
    first wait (the newest only) and join with the first prediction."""
    joins = 0
    for rid in {i for _, i, _ in ops}:
        predicted = waiting = False
        for is_sample, i, _ in ops:
            if i != rid:
                continue
            if is_sample:
                joins, waiting = joins + waiting, False
                predicted = True
            elif predicted:
                joins += 1
            else:
                waiting = True
    return joins


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 1)), max_size=40))
def test_joins_follow_the_rule(tmp_path_factory, ops: list[tuple[bool, int, int]]) -> None:
    store = _store(tmp_path_factory.mktemp("join"))
    joined = store.add([_s(f"r{i}") if is_sample else _l(f"r{i}", v)
                        for is_sample, i, v in ops], now=0)
    assert len(joined) == _expected_joins(ops)
    store.close()
