"""Helpers for testing plugins without an agent: a fake context and runners for components.

In the spirit of `structlog.testing`: plugin authors (and the built-in plugins' own tests)
exercise a component as the agent would, then assert on plain values::

    ctx = fake_context("model_files", ModelFilesConfig(files={"m": "/srv/m.onnx"}))
    metrics = await run_collector(ModelFiles({"m": "/srv/m.onnx"}), ctx)
    assert metrics[("inferwatch_model_file_present", (("model", "m"),))] == 0

What a component emits lands in `ctx.events`, windows it publishes in `ctx.windows`, samples
it submits in `ctx.submitted` (accepted unless a `receiver` says otherwise). Metrics come
back as `{(name, ((label, value), ...)): value}`, labels sorted by name: the same shape as
`tests.helpers.parse_metrics` reads from a real scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.components import Collector, Monitor, Service, Sink, process_window
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.intake import Receiver, Record, SampleIntake
from agent.metrics import Accumulator, PluginMetrics
from agent.model import Event

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.window import Window

Series = tuple[str, tuple[tuple[str, str], ...]]
Metrics = dict[Series, float]
S = TypeVar("S", bound=Service)

__all__ = [
    "FakeContext",
    "Metrics",
    "Series",
    "classification_window",
    "fake_context",
    "metrics_of",
    "run_collector",
    "run_monitor",
    "run_sink",
    "running",
    "wait_for",
]


@dataclass
class FakeContext(PluginContext):
    """A PluginContext whose outputs are kept in lists instead of going to an agent."""

    events: list[Event] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    submitted: list[Record] = field(default_factory=list)

    def metrics_snapshot(self) -> Metrics:
        """Every series this plugin's components have committed so far."""
        return metrics_of(self.metrics)


def fake_context(plugin: str = "example", config: PluginConfig | None = None, *,
                 state_root: Path | None = None, host_id: str = "test-host",
                 receiver: Receiver | None = None, intake: SampleIntake | None = None,
                 series_limit: int = 10_000) -> FakeContext:
    """A context for `plugin` with `config` (its defaults when None).

    `state_root` defaults to a fresh temporary folder. Submitted records are all accepted
    and kept in `ctx.submitted`, unless `receiver` judges them (one reason per record,
    '' for accepted); the ingest plugin's own receiver replaces it when it starts. Pass
    the `intake` of another fake context to share it (as one agent's plugins do): then
    nothing is attached to it here.
    """
    root = state_root or Path(tempfile.mkdtemp(prefix="inferwatch-test-"))
    ctx = FakeContext(plugin=plugin, config=config or PluginConfig(), host_id=host_id,
                      state_root=root, metrics=PluginMetrics(plugin, series_limit),
                      emitter=lambda _event: True, intake=intake or SampleIntake())
    ctx.emitter = _keep(ctx.events)
    ctx.window_sink = ctx.windows.append
    if intake is None:
        ctx.intake.attach(receiver or _accept_into(ctx.submitted))
    return ctx


def _keep(events: list[Event]) -> Callable[[Event], bool]:
    def emit(event: Event) -> bool:
        events.append(event)
        return True

    return emit


def _accept_into(kept: list[Record]) -> Receiver:
    def receive(records: Sequence[Record]) -> list[str]:
        kept.extend(records)
        return [""] * len(records)

    return receive


def metrics_of(store: PluginMetrics) -> Metrics:
    """A plugin's committed series as plain values."""
    out: Metrics = {}
    for metric, values in store.items():
        for labels, value in values.items():
            out[(metric.name, tuple(sorted(zip(metric.labels, labels, strict=True))))] = value
    return out


async def run_collector(collector: Collector, ctx: FakeContext, ticks: int = 1) -> Metrics:
    """Start `collector`, collect `ticks` times as the supervisor would (a blocking one in a
    thread), commit each tick to `ctx.metrics`, stop it; return what the last tick left."""
    await collector.start()
    try:
        for _ in range(ticks):
            acc = Accumulator()
            if collector.blocking and not inspect.iscoroutinefunction(collector.collect):
                await asyncio.to_thread(collector.collect, acc)
            elif inspect.isawaitable(result := collector.collect(acc)):
                await result
            ctx.metrics.commit(collector.name, acc)
    finally:
        await collector.stop()
    return ctx.metrics_snapshot()


async def run_monitor(monitor: Monitor, ctx: FakeContext, windows: Iterable[Window]) -> list[Event]:
    """Start `monitor`, pass each window through it the agent's way (`process_window`), stop
    it; return the events, which are also appended to `ctx.events`."""
    events: list[Event] = []
    await monitor.start()
    try:
        for window in windows:
            events += await process_window(monitor, window)
    finally:
        await monitor.stop()
    ctx.events.extend(events)
    return events


async def run_sink(sink: Sink, events: Sequence[Event]) -> None:
    """Start `sink`, deliver `events` in its own batch size, stop it; a failed delivery raises
    (the agent would retry the batch)."""
    await sink.start()
    try:
        for i in range(0, len(events), sink.batch_size):
            await sink.deliver(events[i:i + sink.batch_size])
    finally:
        await sink.stop()


@contextlib.asynccontextmanager
async def running(service: S) -> AsyncIterator[S]:
    """`service` started and its run() in a task for the body of the `async with`; then
    cancelled and stopped. A run() that failed meanwhile raises its exception on exit."""
    await service.start()
    task = asyncio.create_task(service.run(), name=f"test:{service.name}")
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.stop()


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0,
                   interval: float = 0.01) -> None:
    """Poll `predicate` on the loop clock until it is truthy; TimeoutError after `timeout`."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the predicate is anything: no event to await
            await asyncio.sleep(interval)


def classification_window(
    model: str, predictions: Sequence[str], labels: Sequence[str | None] = (), *,
    features: Mapping[str, Sequence[float | str | None]] | None = None,
    model_version: str = "", spec: str = "1h", start: float = 0.0, end: float = 3600.0,
    final: bool = True,
) -> Window:
    """A classification window as the window stage builds it, from plain lists: classes are
    the sorted distinct predictions and labels; a missing label is None. Numeric features
    are float arrays (None -> NaN), others object arrays."""
    import numpy as np  # noqa: PLC0415 - numpy only for authors who test monitors

    from agent.window import Window  # noqa: PLC0415

    truth = list(labels) or [None] * len(predictions)
    classes = tuple(sorted({*predictions, *(t for t in truth if t is not None)}))
    index = {name: i for i, name in enumerate(classes)}
    columns: dict[str, Any] = {}
    for name, values in (features or {}).items():
        numeric = all(v is None or isinstance(v, int | float) for v in values)
        columns[name] = (np.array([np.nan if v is None else v for v in values], float)
                         if numeric else np.array(list(values), dtype=object))
    return Window(
        model=model, model_version=model_version, spec=spec, start=start, end=end,
        task="classification", n=len(predictions),
        y_pred=np.array([index[p] for p in predictions], np.intp),
        y_true=np.array([-1 if t is None else index[t] for t in truth], np.intp),
        classes=classes, positive=index.get("1", -1) if len(classes) == 2 else -1,
        features=columns, final=final,
    )
