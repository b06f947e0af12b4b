"""The component kinds a plugin contributes; the supervisor runs each in its own task."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from agent.metrics import Accumulator, Exports
from agent.model import Event
from agent.plain import plain, plain_event

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.delivery import DurableDelivery
    from agent.window import Window


class Component:
    """Constructors must do no I/O; acquire resources in start(), release them in stop().

    stop() must be idempotent and safe when start() failed or never ran.
    """

    kind: ClassVar[str] = "component"

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        """Acquire resources. Raise NotReadyError to be retried, PermanentError to stay off."""

    async def stop(self) -> None:
        """Release resources."""


class Collector(Component):
    """Periodic reader of some state, writing metrics into an Accumulator.

    With `blocking = True` (the default) collect() runs in the component's own worker thread,
    so psutil, statvfs or NVML never stall the event loop; a call that outlives its timeout
    is reported and the next tick is skipped until it returns. Async collectors set it False.
    """

    kind: ClassVar[str] = "collector"
    blocking: ClassVar[bool] = True

    def collect(self, out: Accumulator) -> Awaitable[None] | None:
        raise NotImplementedError


class Service(Component):
    """A long-running task (a listener, a subscription); run() returns only on failure."""

    kind: ClassVar[str] = "service"

    async def run(self) -> None:
        raise NotImplementedError


class Monitor(Component):
    """Reads each closed window (every model's, as arrays); returns the events it warrants.

    Put what the window showed in `window.results[<section>]` (replay prints it). Export
    series through `self.exports`: compute a part's Accumulator with the window (in the
    worker thread, if the monitor uses one) and `self.exports.put(part, acc)` on the event
    loop when the window's state is committed; the supervisor publishes them after each
    window. numpy values are converted to plain Python on the way out (`process_window`).
    A window arrives twice when labels are awaited: first with the labels joined so far,
    then with `final = True`.
    """

    kind: ClassVar[str] = "monitor"
    # True: also receive provisional windows (`window.provisional`), running views of the
    # windows still open, to export; they must raise no events and change no state.
    provisional: ClassVar[bool] = False
    # True: what the monitor leaves in `window.results` is plain Python already (it called
    # agent.plain.plain itself, once per window), so process_window does not walk it again.
    # tests/contract/test_monitor_output.py holds every built-in one that says so to it.
    plain_results: ClassVar[bool] = False

    @functools.cached_property
    def exports(self) -> Exports:
        """This monitor's series (made on first use: a subclass need not call our init)."""
        return Exports()

    async def process(self, window: Window) -> Sequence[Event]:
        raise NotImplementedError


async def process_window(monitor: Monitor, window: Window) -> list[Event]:
    """The one way a window goes through a monitor (the agent and `replay` alike): what the
    monitor leaves in `window.results` and the events it returns come out plain Python, so
    a numpy scalar from any monitor can never reach an encoder (DESIGN.md, "Replay output")."""
    events = await monitor.process(window)
    if not monitor.plain_results:
        results = window.results
        for section, found in results.items():
            results[section] = plain(found)  # same keys: safe while iterating
    return [plain_event(event) for event in events]


class Sink(Component):
    """Delivers events somewhere (a broker, a webhook, a log); raise to have a batch retried."""

    kind: ClassVar[str] = "sink"
    batch_size: ClassVar[int] = 100
    queue_size: ClassVar[int] = 10_000
    # None: the plugin's `timeout`. A sink whose deliver() is a local commit sets its own,
    # since abandoning a commit that then completes would only write the batch twice.
    deliver_timeout: ClassVar[float | None] = None
    # True: with `durable = true` in its SinkConfig, the core commits each event routed to
    # this sink into the sink's own outbox and calls deliver() from there (agent/delivery.py):
    # returning acknowledges the batch, raising has it retried with backoff.
    durable: ClassVar[bool] = False
    # A durable sink with its own wire format sets `encodes`: the core commits the rows its
    # encode() returns (a key such as a topic, and the bare payload) instead of the envelope,
    # and feeds deliver_rows() from the outbox (agent/delivery.py, docs/sinks.md).
    encodes: ClassVar[bool] = False
    # Drop reasons of its own (UndeliverableError from encode(), e.g. `too_large`), exported
    # beside the core's in inferwatch_sink_dropped_total.
    drop_reasons: ClassVar[tuple[str, ...]] = ()
    # An outbox file of an older layout, relative to state_dir: its rows are moved into the
    # sink's outbox when that is first opened, so an upgrade delivers what was waiting.
    legacy_outbox: ClassVar[str | None] = None
    # False: the sink exports its outbox's figures under names of its own (the MQTT plugin's,
    # read from `delivery`), and the core commits none for it.
    series: ClassVar[bool] = True
    delivery: DurableDelivery | None = None  # set by the core for a durable sink
    read_size: int | None = None  # outbox rows per delivery (a window); None: batch_size

    async def deliver(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def encode(self, event: Event) -> Sequence[tuple[str, bytes]]:
        """With `encodes`: the outbox rows (key, payload) for one event, committed together;
        none drops it silently; raise UndeliverableError to drop it and count the reason."""
        raise NotImplementedError

    async def deliver_rows(self, rows: Sequence[tuple[int, str, bytes]]) -> Acked | None:
        """With `encodes`: send rows (seq, key, payload), oldest first. Return None when all
        were acknowledged, else which were (and which to drop): the others stay in the outbox
        and are offered again in a later pass from its start, after a growing delay. Raise to
        have the whole batch retried with backoff (a lost connection); NotReadyError when the
        sink logs the outage itself and will wake() delivery (the core then logs nothing)."""
        raise NotImplementedError

    def wake(self) -> None:
        """Deliver now: the receiver is back (a broker reconnected), so cut short the
        backoff and any wait of the delivery loop. A no-op without an outbox."""
        if self.delivery is not None:
            self.delivery.wake_now()


class Acked(NamedTuple):
    """What a row sink's deliver_rows() reports: the seqs the receiver acknowledged, those to
    drop (deleted and counted by reason, one of the sink's `drop_reasons`), and the loop time
    at which to read the kept ones again (None: after the core's own growing delay)."""

    delivered: Sequence[int]
    dropped: Mapping[str, Sequence[int]] | None = None
    retry_at: float | None = None


# Start order: downstream first, so nothing produced early has nowhere to go. Stop is reversed.
START_ORDER: tuple[str, ...] = ("sink", "monitor", "service", "collector")
