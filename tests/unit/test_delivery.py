"""Routing events to sinks and durable delivery through each sink's own outbox."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.backoff import Backoff
from agent.bus import EventBus
from agent.components import Sink
from agent.config import Duration, PluginConfig, SinkConfig
from agent.delivery import (
    ROUTE_CACHE,
    DurableDelivery,
    KindRoute,
    durable_delivery,
    outbox_path,
    route_for,
)
from agent.errors import PermanentDeliveryError
from agent.metrics import PluginMetrics
from agent.model import Event, Severity
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised
from tests.helpers import poll_async

MiB = 1 << 20


def _event(kind: str = "k", severity: Severity = Severity.INFO, n: int = 0,
           pad: int = 0) -> Event:
    return Event(kind=kind, source="s", host="h", severity=severity,
                 data={"n": n, "pad": "x" * pad})


class Receiver(Sink):
    """Refuses (raises) while `down`; otherwise records what it got, in order."""

    durable = True
    batch_size = 10

    def __init__(self) -> None:
        super().__init__("out")
        self.down, self.got, self.attempts = False, [], 0
        self.reject: set[int] = set()

    async def deliver(self, events: Sequence[Event]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("receiver down")
        bad = [e for e in events if e.data["n"] in self.reject]
        if bad:
            first = events.index(bad[0])
            self.got.extend(e.data["n"] for e in events[:first])
            raise PermanentDeliveryError([bad[0]], delivered=events[:first], reason="HTTP 400")
        self.got.extend(e.data["n"] for e in events)


class CountingBackoff(Backoff):
    """Records each delay asked for, and keeps them short."""

    def __init__(self) -> None:
        super().__init__(0.001, 0.004)
        self.delays: list[float] = []

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        return delay


def _delivery(tmp_path: Path, sink: Receiver, **settings: object
              ) -> tuple[DurableDelivery, PluginMetrics, CountingBackoff]:
    store, backoff = PluginMetrics("p", 100), CountingBackoff()
    config = SinkConfig(**settings)  # type: ignore[arg-type]
    return DurableDelivery("p", sink, config, tmp_path, store, backoff=backoff), store, backoff


async def _held(tmp_path: Path, events: list[Event], **settings: object
                ) -> tuple[Receiver, DurableDelivery, PluginMetrics, CountingBackoff]:
    """`events` put through an opened delivery whose receiver is down: all in the outbox."""
    sink = Receiver()
    sink.down = True
    delivery, store, backoff = _delivery(tmp_path, sink, **settings)
    await delivery.open()
    await delivery.put(events)
    return sink, delivery, store, backoff


def _series(store: PluginMetrics) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(m.name, labels): v for m, values in store.items() for labels, v in values.items()}


# -- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "severity", "taken"), [
    ("drift.detected", "info", True),
    ("drift.feature.detected", "warning", True),  # * crosses dots, as fnmatch does
    ("quality.degraded", "critical", True),
    ("quality.recovered", "critical", False),
    ("driftx", "critical", False),
    ("gpu.xid", "critical", False),
])
def test_a_route_takes_the_kinds_its_globs_match(kind: str, severity: str, taken: bool) -> None:
    route = KindRoute(["drift.*", "quality.degraded"], "info")
    assert route(_event(kind, Severity(severity))) is taken


@pytest.mark.parametrize(("floor", "taken"), [
    ("info", ["info", "warning", "critical"]),
    ("warning", ["warning", "critical"]),
    ("critical", ["critical"]),
])
def test_a_route_takes_severities_from_its_floor_up(floor: str, taken: list[str]) -> None:
    route = KindRoute(["*"], floor)
    assert [s.value for s in Severity if route(_event("k", s))] == taken


@given(st.lists(st.text("ab.*?", min_size=1, max_size=5), min_size=1, max_size=3),
       st.text("ab.", max_size=6))
def test_a_route_agrees_with_fnmatchcase_and_its_cache(globs: list[str], kind: str) -> None:
    route = KindRoute(globs, "info")
    expected = any(fnmatch.fnmatchcase(kind, g) for g in globs)
    assert route(_event(kind)) is expected
    assert route(_event(kind)) is expected  # the cached answer


def test_match_all_at_info_is_no_filter_and_a_plain_config_is_none() -> None:
    assert route_for(SinkConfig()) is None
    assert route_for(PluginConfig()) is None
    assert route_for(SinkConfig(min_severity="warning")) is not None


class LookAlike(PluginConfig):
    """A sink plugin's config with SinkConfig's keys that does not subclass it (yet)."""

    match: tuple[str, ...] = ("drift.*",)
    min_severity: str = "warning"
    durable: bool = True
    outbox_max_age: Duration = Duration(60.0)


def test_a_config_with_the_sink_keys_routes_like_a_sink_config(tmp_path: Path) -> None:
    route = route_for(LookAlike())
    assert route is not None
    assert route(_event("drift.detected", Severity.CRITICAL))
    assert not route(_event("drift.detected", Severity.INFO))
    assert not route(_event("gpu.xid", Severity.CRITICAL))
    found = durable_delivery("p", Receiver(), LookAlike(), tmp_path, PluginMetrics("p", 10))
    assert found is not None
    assert found.outbox.max_age == 60.0
    assert route_for(LookAlike(min_severity="loud")) is None  # invalid: not a route


def test_the_route_cache_stays_bounded_under_a_flood_of_kinds() -> None:
    route = KindRoute(["k.1*"], "info")
    taken = [n for n in range(10_000) if route(_event(f"k.{n}"))]
    assert taken == [n for n in range(10_000) if str(n).startswith("1")]
    assert len(route._seen) == ROUTE_CACHE


def test_a_sink_config_refuses_an_empty_match() -> None:
    with pytest.raises(ValueError, match="kind glob"):
        SinkConfig(match=[])


async def test_the_bus_queues_for_a_sink_only_what_its_route_takes() -> None:
    bus = EventBus(100, SelfMetrics())
    routed = bus.subscribe("p.routed", 100, route_for(SinkConfig(match=["drift.*"])))
    every = bus.subscribe("q.all", 100)
    for kind in ("drift.detected", "gpu.xid", "drift.recovered", "agent.started"):
        bus.emit(_event(kind))
    task = asyncio.create_task(bus.run())
    await bus.drain(5)
    task.cancel()
    assert [routed.get_nowait().kind for _ in range(routed.qsize())] == [
        "drift.detected", "drift.recovered"]
    assert every.qsize() == 4


# -- durable delivery ----------------------------------------------------------------------


def test_only_a_durable_sink_class_with_durable_config_gets_an_outbox(tmp_path: Path) -> None:
    store = PluginMetrics("p", 10)
    assert durable_delivery("p", Receiver(), SinkConfig(), tmp_path, store) is not None
    assert durable_delivery("p", Receiver(), SinkConfig(durable=False), tmp_path, store) is None
    assert durable_delivery("p", Receiver(), PluginConfig(), tmp_path, store) is None
    plain = Receiver()
    plain.durable = False  # type: ignore[misc]
    assert durable_delivery("p", plain, SinkConfig(), tmp_path, store) is None


def test_an_outbox_file_name_keeps_to_safe_characters(tmp_path: Path) -> None:
    assert outbox_path(tmp_path, "site", "pager out/../x").name == "site-pager_out_.._x.sqlite"
    assert outbox_path(tmp_path, ".hidden", "s").name == "_hidden-s.sqlite"
    assert outbox_path(tmp_path, "p", "s").parent == tmp_path / "sinks"


async def test_events_wait_while_the_receiver_is_down_then_arrive_in_order(
        tmp_path: Path) -> None:
    sink, delivery, store, backoff = await _held(tmp_path, [_event(n=n) for n in range(25)])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: sink.attempts >= 4)
    assert sink.got == []
    assert delivery.outbox.depth == 25
    sink.down = False
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    assert sink.got == list(range(25))
    series = _series(store)
    assert series[("inferwatch_sink_delivered_total", ("p", "out"))] == 25
    assert series[("inferwatch_sink_failed_total", ("p", "out"))] == delivery.failed >= 4
    assert series[("inferwatch_sink_queued", ("p", "out"))] == 0
    assert backoff.attempt == 0  # reset by the delivery
    await delivery.close()


async def test_retries_back_off_exponentially_with_jitter(tmp_path: Path) -> None:
    _, delivery, _, backoff = await _held(tmp_path, [_event()])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: len(backoff.delays) >= 5)
    task.cancel()
    for attempt, delay in enumerate(backoff.delays[:5]):
        ceiling = min(0.004, 0.001 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    await delivery.close()


async def test_a_permanent_refusal_drops_that_event_and_counts_it(tmp_path: Path) -> None:
    sink = Receiver()
    sink.reject = {3, 12}
    delivery, store, _ = _delivery(tmp_path, sink)
    await delivery.open()
    await delivery.put([_event(n=n) for n in range(20)])
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    assert sink.got == [n for n in range(20) if n not in {3, 12}]
    series = _series(store)
    assert series[("inferwatch_sink_dropped_total", ("p", "out", "rejected"))] == 2
    assert series[("inferwatch_sink_delivered_total", ("p", "out"))] == 18
    assert series[("inferwatch_sink_failed_total", ("p", "out"))] == 0
    await delivery.close()


async def test_the_byte_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    sink = Receiver()
    delivery, store, _ = _delivery(tmp_path, sink, outbox_max_bytes=MiB)
    await delivery.open()
    for n in range(300):  # ~10 KiB each: 3 MiB in all, the bound is 1 MiB
        await delivery.put([_event(n=n, pad=10_000)])
    assert delivery.outbox.bytes <= MiB
    dropped = delivery.outbox.dropped["full"]
    assert 190 <= dropped <= 210
    delivery.publish()
    assert _series(store)[("inferwatch_sink_dropped_total", ("p", "out", "full"))] == dropped
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    assert sink.got == list(range(dropped, 300))  # the newest survive, in order
    await delivery.close()


async def test_the_age_bound_expires_what_waited_too_long(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr("agent.outbox.time.time", lambda: now[0])
    sink, delivery, store, _ = await _held(tmp_path, [_event(n=n) for n in range(5)],
                                           outbox_max_age=Duration(60.0))
    now[0] += 30
    await delivery.put([_event(n=n) for n in range(5, 8)])
    now[0] += 45  # the first five are 75 s old, the other three 45 s
    sink.down = False
    task = asyncio.create_task(delivery.run())
    await poll_async(lambda: delivery.outbox.depth == 0)
    task.cancel()
    assert sink.got == [5, 6, 7]
    assert _series(store)[("inferwatch_sink_dropped_total", ("p", "out", "expired"))] == 5
    await delivery.close()


async def test_the_outbox_survives_a_restart_of_the_delivery(tmp_path: Path) -> None:
    sink, first, _, _ = await _held(tmp_path, [_event(n=n) for n in range(7)])
    await first.close()
    assert outbox_path(tmp_path, "p", "out").exists()
    sink.down = False
    again, _, _ = _delivery(tmp_path, sink)
    await again.open()
    assert again.outbox.depth == 7
    task = asyncio.create_task(again.run())
    await poll_async(lambda: again.outbox.depth == 0)
    task.cancel()
    assert sink.got == list(range(7))
    await again.close()


async def test_a_supervised_durable_sink_commits_before_it_stops(tmp_path: Path) -> None:
    """Stopping never drops what was routed to a durable sink: it is in the outbox."""
    metrics, store = SelfMetrics(), PluginMetrics("p", 100)
    bus = EventBus(1000, metrics)
    sink = Receiver()
    sink.down = True
    settings = SinkConfig(match=["keep.*"], timeout=Duration(1.0))
    delivery = DurableDelivery("p", sink, settings, tmp_path, store, backoff=CountingBackoff())
    sup = Supervised("p", sink, settings, metrics=metrics, store=store, bus=bus, host_id="h",
                     delivery=delivery)
    sup.launch()
    for n in range(50):
        bus.emit(_event("keep.this" if n % 2 else "skip.this", n=n))
    task = asyncio.create_task(bus.run())
    await bus.drain(5)
    await sup.stop(5)
    task.cancel()
    assert sink.got == []
    again, _, _ = _delivery(tmp_path, Receiver())
    await again.open()
    assert again.outbox.depth == 25
    rows = await asyncio.to_thread(again.outbox.take, 100)
    assert {kind for _, kind, _ in rows} == {"keep.this"}
    await again.close()


async def test_a_reload_keeps_the_outbox_and_applies_the_new_route(tmp_path: Path) -> None:
    """What was routed before the reload is in the outbox and is delivered after it; what
    comes after follows the new `match`."""
    metrics, store = SelfMetrics(), PluginMetrics("p", 100)
    bus = EventBus(1000, metrics)
    bus_task = asyncio.create_task(bus.run())

    def supervise(sink: Receiver, match: list[str]) -> Supervised:
        settings = SinkConfig(match=match, timeout=Duration(1.0))
        delivery = DurableDelivery("p", sink, settings, tmp_path, store,
                                   backoff=CountingBackoff())
        return Supervised("p", sink, settings, metrics=metrics, store=store, bus=bus,
                          host_id="h", delivery=delivery)

    down = Receiver()
    down.down = True
    old = supervise(down, ["a.*"])
    old.launch()
    for n in range(10):
        bus.emit(_event("a.before" if n % 2 else "b.before", n=n))
    await bus.drain(5)
    assert await old.stop(5, keep_queue=True) == []  # committed, nothing left to carry
    up = Receiver()
    new = supervise(up, ["b.*"])
    new.launch()
    for n in range(10, 16):
        bus.emit(_event("a.after" if n % 2 else "b.after", n=n))
    await poll_async(lambda: len(up.got) == 8)
    await new.stop(5)
    bus_task.cancel()
    assert sorted(up.got) == [1, 3, 5, 7, 9, 10, 12, 14]
    assert _dropped(metrics) == 0


def _dropped(metrics: SelfMetrics) -> float:
    return sum(metrics.registry.get_sample_value("inferwatch_events_dropped_total",
                                                 {"reason": r}) or 0.0
               for r in ("queue_full", "sink_full", "stopped"))


async def test_a_best_effort_sink_drops_what_it_refuses_for_good(tmp_path: Path) -> None:
    """durable = false: no outbox, but a refusal is still dropped and counted, not retried
    forever; the rest of the batch is offered again."""
    metrics, store = SelfMetrics(), PluginMetrics("p", 100)
    bus = EventBus(1000, metrics)
    sink = Receiver()
    sink.reject = {2, 6}
    settings = SinkConfig(durable=False, timeout=Duration(1.0))
    assert durable_delivery("p", sink, settings, tmp_path, store) is None
    sup = Supervised("p", sink, settings, metrics=metrics, store=store, bus=bus, host_id="h")
    sup.launch()
    for n in range(10):
        bus.emit(_event(n=n))
    task = asyncio.create_task(bus.run())
    await poll_async(lambda: len(sink.got) == 8)
    await sup.stop(5)
    task.cancel()
    assert sink.got == [0, 1, 3, 4, 5, 7, 8, 9]
    assert metrics.registry.get_sample_value("inferwatch_events_dropped_total",
                                             {"reason": "rejected"}) == 2
    assert metrics.registry.get_sample_value("inferwatch_plugin_restarts_total",
                                             {"plugin": "p", "component": "out"}) is None
    assert not (tmp_path / "sinks").exists()
