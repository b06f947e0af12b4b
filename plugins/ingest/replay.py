"""`inferwatch replay`: recorded samples and labels through the agent's own pipeline.

Same validation, sampling, windows and monitors as the running agent, on sample time, so
thresholds can be tuned on history and a config tested before it ships. The output is JSON
lines (DESIGN.md, "Replay output") and is deterministic: event ids and times derive from the
window, not from the wall clock or a random source.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import heapq
import inspect
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from agent import logs
from agent.components import Monitor
from agent.config import Config, PluginConfig
from agent.context import PluginContext
from agent.errors import ConfigError
from agent.loader import Plugins
from agent.metrics import PluginMetrics
from agent.model import CROCKFORD, Event, Label, Sample, utc_timestamp
from agent.window import Window
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import decode_many
from plugins.ingest.pipeline import Pipeline, parse_ts
from plugins.ingest.windows import WindowStage

CHUNK = 20_000  # lines decoded per msgspec call


@dataclass
class MemoryJoin:
    """The label join for a finite recording: in memory, TTL on sample time."""

    ttl: float
    stage: WindowStage
    predictions: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    labels: dict[tuple[str, str], tuple[Label, float]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    now: float = 0.0

    def add_many(self, records: list[Sample | Label]) -> None:
        for record in records:
            self.add(record)

    def add(self, record: Sample | Label) -> None:
        key = (record.model, record.request_id)
        if isinstance(record, Sample):
            self.predictions[key] = (record.model_version, self.now)
            waiting = self.labels.pop(key, None)
            if waiting is not None and self.now - waiting[1] <= self.ttl:
                self._joined(key, record.model_version, waiting[0])
            return
        found = self.predictions.get(key)
        if found is not None and self.now - found[1] <= self.ttl:
            self._joined(key, found[0], record)
        else:
            self.labels[key] = (record, self.now)

    def _joined(self, key: tuple[str, str], version: str, label: Label) -> None:
        """The windows find a sample by model, version and request id: that is all we keep."""
        self.counts["joined"] += 1
        self.stage.label(Sample(model=key[0], model_version=version, request_id=key[1],
                                prediction=None), label)


def open_lines(path: Path) -> IO[bytes]:
    """A plain or gzip-compressed file, by its magic number."""
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    raw.seek(0)
    return raw


def records(path: Path, rejected: Counter[str]) -> Iterator[tuple[float, int, Sample | Label]]:
    """(time, order, record) in file order; a record without a time takes the previous one."""
    last, order = 0.0, 0
    with open_lines(path) as fh:
        while lines := [line for line in fh.readlines(CHUNK * 200) if line.strip()]:
            for record, reason in decode_many(lines):
                if record is None:
                    rejected[reason] += 1
                    continue
                ts = parse_ts(record.ts)
                last = last if ts is None else ts
                order += 1
                yield last, order, record


class Replay:
    def __init__(self, config: Config, plugins: Plugins, *, windows: Sequence[str] = (),
                 out: IO[str]) -> None:
        ingest = config.plugins.get("ingest")
        settings = ingest if isinstance(ingest, IngestConfig) else IngestConfig()
        self.config, self.plugins, self.out = config, plugins, out
        specs = list(windows) or settings.windows
        models = settings.models
        if windows:
            models = {n: msgspec.structs.replace(m, windows=[]) for n, m in models.items()}
        # Windows become final when no label in the files can still reach them.
        self.stage = WindowStage(models, specs, max_rows=settings.max_window_samples,
                                 max_features=settings.max_features,
                                 label_wait=float(settings.label_ttl),
                                 limits=settings.limits)
        self.join = MemoryJoin(float(settings.label_ttl), self.stage)
        self.pipeline = Pipeline(models, self.stage, self.join.add_many)
        self.rejected: Counter[str] = Counter()
        self.monitors: list[Monitor] = []
        self.events: list[Event] = []
        self.windows = 0
        self.references: list[Path] = []  # drift reference profiles, for monitors that take them

    async def run(self, samples: Path, labels: Path | None) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="inferwatch-replay-") as scratch:
            await self._start_monitors(Path(scratch))
            try:
                streams = [records(samples, self.rejected)]
                if labels is not None:
                    streams.append(records(labels, self.rejected))
                # Merged on time; at equal times the samples file first, then file order.
                merged = heapq.merge(*(_keyed(s, i) for i, s in enumerate(streams)),
                                     key=lambda item: item[0])
                for (ts, _, _), record in merged:
                    self.join.now = ts
                    if self.stage.due(ts):
                        for window in self.stage.advance(ts):
                            await self._window(window)
                    if self.pipeline.offer(record, ts, ts) == "unknown_model":
                        self.rejected["unknown_model"] += 1
                for window in self.stage.flush():
                    await self._window(window)
            finally:
                for monitor in self.monitors:
                    await monitor.stop()
        return self.summary()

    async def _start_monitors(self, scratch: Path) -> None:
        for name, settings in sorted(self.config.plugins.items()):
            # With -c, the plugins the file enables; without, every built-in monitor.
            if self.config.path is not None and not settings.enabled:
                continue
            for component in await self._components(name, settings, scratch):
                if isinstance(component, Monitor):
                    await component.start()
                    self._prepare(component)
                    self.monitors.append(component)

    def _prepare(self, monitor: Monitor) -> None:
        """Monitors that call out (webhooks) stay quiet; those that take references get them."""
        if hasattr(monitor, "replaying"):
            monitor.replaying = True
        take = getattr(monitor, "set_reference", None)
        if take is None:
            return
        from plugins.drift.profile import Profile  # noqa: PLC0415

        for path in self.references:
            try:
                take(Profile.load(path))
            except ValueError as exc:
                raise ConfigError([f"--reference: {exc}"]) from None

    async def _components(self, name: str, settings: PluginConfig, scratch: Path) -> list[Any]:
        ctx = PluginContext(
            plugin=name, config=settings, host_id=self.config.agent.host_id,
            # A scratch state dir: a replay neither reads what the running agent learnt (its
            # captured references) nor leaves anything behind, so it repeats exactly.
            state_root=scratch,
            metrics=PluginMetrics(name, self.config.prometheus.series_limit_per_plugin),
            emitter=self._collect,
        )
        if name == "ingest":
            return []  # its listeners and join are replaced by the file readers above
        try:
            result = self.plugins.call(name, "inferwatch_components", config=settings,
                                       ctx=ctx)
            result = await result if inspect.isawaitable(result) else result
        except Exception as exc:
            raise ConfigError([f"plugins.{name}: set-up failed: {exc}"]) from exc
        return list(result or [])

    def _collect(self, event: Event) -> bool:
        self.events.append(event)
        return True

    async def _window(self, window: Window) -> None:
        events: list[Event] = []
        for monitor in self.monitors:
            events += await monitor.process(window)
        self.windows += 1
        self._print(window_line(window))
        for i, event in enumerate([*self.events, *events]):
            self._print({"type": "event", **msgspec.to_builtins(_fixed(event, window, i))})
        self.events.clear()

    def _print(self, line: dict[str, Any]) -> None:
        self.out.write(msgspec.json.encode(line).decode())
        self.out.write("\n")

    def summary(self) -> dict[str, Any]:
        return {"windows": self.windows, "samples": sum(self.pipeline.seen.values()),
                "sampled_out": sum(self.pipeline.sampled_out.values()),
                "labels_joined": self.join.counts["joined"],
                "rejected": dict(sorted(self.rejected.items()))}


def _keyed(stream: Iterator[tuple[float, int, Sample | Label]], index: int
           ) -> Iterator[tuple[tuple[float, int, int], Sample | Label]]:
    for ts, order, record in stream:
        yield (ts, index, order), record


def window_line(window: Window) -> dict[str, Any]:
    results = window.results
    quality: dict[str, Any] = {"features": {f: q for f, q in window.quality.items() if q}}
    quality.update(results.get("quality", {}))
    return {
        "type": "window", "model": window.model, "model_version": window.model_version,
        "window": window.spec, "start": utc_timestamp(window.start),
        "end": utc_timestamp(window.end), "final": window.final, "n": window.n,
        "n_labeled": int(window.labeled.sum()), "metrics": results.get("metrics", {}),
        "estimated": results.get("estimated", {}), "drift": results.get("drift", {}),
        "quality": quality,
        **{k: v for k, v in results.items()
           if k not in ("metrics", "estimated", "drift", "quality")},
    }


def _fixed(event: Event, window: Window, seq: int) -> Event:
    """Sample time and a content-derived id: the same input replays to the same bytes."""
    digest = hashlib.blake2b(event.kind.encode() + msgspec.json.encode(event.data) +
                             f"{window.model}\0{window.spec}\0{window.end}\0{seq}".encode(),
                             digest_size=10).digest()
    ms = int(window.end * 1000) if window.end > 0 else 0
    value = (ms << 80) | int.from_bytes(digest, "big")
    ulid = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))
    return msgspec.structs.replace(event, id=ulid, ts=utc_timestamp(window.end))


def replay(config: Config, plugins: Plugins, samples: Path, labels: Path | None, *,
           windows: Sequence[str], out: IO[str], references: Sequence[Path] = ()
           ) -> dict[str, Any]:
    logs.configure(config.agent.log_level, "auto", sys.stderr)  # stdout is the output
    runner = Replay(config, plugins, windows=windows, out=out)
    runner.references = list(references)
    # The join and the windows hold millions of small objects that live to the end; letting
    # the cyclic collector rescan them every few thousand allocations cost ~20% of a replay.
    gc.set_threshold(200_000, 50, 1000)
    return asyncio.run(runner.run(samples, labels))
