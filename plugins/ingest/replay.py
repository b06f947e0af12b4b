"""`inferwatch replay`: recorded samples and labels through the agent's own pipeline.

Same validation, sampling, windows and monitors as the running agent, on sample time, so
thresholds can be tuned on history and a config tested before it ships. The output is JSON
lines (DESIGN.md, "Replay output") and is deterministic: event ids and times derive from the
window, not from the wall clock or a random source.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import heapq
import inspect
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from agent import logs
from agent.components import Monitor, process_window
from agent.config import Config, PluginConfig
from agent.context import PluginContext
from agent.errors import ConfigError
from agent.loader import Plugins
from agent.metrics import PluginMetrics
from agent.model import CROCKFORD, Event, Label, Sample, utc_timestamp
from agent.plain import plain
from agent.recordings import open_lines
from agent.window import Window
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import decode_many
from plugins.ingest.pipeline import UNKNOWN_MODEL, Pipeline, parse_ts
from plugins.ingest.replay_report import (
    Disorder,
    LabelTally,
    disorder_notes,
    label_notes,
    silence_notes,
    stream_summary,
    turned_off,
)
from plugins.ingest.windows import WindowStage

CHUNK = 20_000  # lines decoded per msgspec call
UNKEPT_LIMIT = 2_000_000  # predictions no window kept, remembered (~100 MB)
SECTIONS = frozenset({"drift"})  # the sections large enough to be worth encoding apart
SECTIONS_KEPT = 64  # windows awaiting their final pass whose drift section is kept encoded


@dataclass
class MemoryJoin:
    """The label join for a finite recording: in memory, TTL on sample time.

    Every label that reaches it ends in exactly one of `LABEL_OUTCOMES` (`finish()` settles
    those still waiting), so a replay can say why labels did not join.
    """

    ttl: float
    stage: WindowStage
    # (model, request id) -> (model version, time, labelled yet)
    predictions: dict[tuple[str, str], tuple[str, float, bool]] = field(default_factory=dict)
    labels: dict[tuple[str, str], tuple[Label, float]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    now: float = 0.0
    longest_late: float = 0.0  # the longest prediction-to-label delay among expired labels
    # Predictions no window kept (so never offered here), by hash((model, request id)): a
    # label for one is `outside_windows`, not `unmatched`. Bounded; beyond, unmatched.
    unkept: set[int] = field(default_factory=set)
    last_sample: Sample | None = None  # the last prediction offered, to see what was not

    def not_kept(self, sample: Sample) -> None:
        if len(self.unkept) < UNKEPT_LIMIT:
            self.unkept.add(hash((sample.model, sample.request_id)))

    def add_many(self, records: list[Sample | Label]) -> None:
        for record in records:
            self.add(record)

    def add(self, record: Sample | Label) -> None:
        key = (record.model, record.request_id)
        if isinstance(record, Sample):
            self.last_sample = record
            self.predictions[key] = (record.model_version, self.now, False)
            waiting = self.labels.pop(key, None)
            if waiting is not None:
                if self.now - waiting[1] <= self.ttl:
                    self._joined(key, record.model_version, waiting[0])
                else:
                    self.counts["unmatched"] += 1  # it waited longer than the TTL
            return
        self._label(key, record)

    def _label(self, key: tuple[str, str], label: Label) -> None:
        found = self.predictions.get(key)
        if found is None and self.unkept and hash(key) in self.unkept:
            self.counts["outside_windows"] += 1
            return
        if found is None:  # before its prediction: it waits (a newer label replaces it)
            if self.labels.pop(key, None) is not None:
                self.counts["duplicate"] += 1
            self.labels[key] = (label, self.now)
            return
        version, at, _ = found
        if self.now - at > self.ttl:
            self.counts["expired"] += 1
            self.longest_late = max(self.longest_late, self.now - at)
            return
        self._joined(key, version, label)

    def _joined(self, key: tuple[str, str], version: str, label: Label) -> None:
        """The windows find a sample by model, version and request id: that is all we keep."""
        _, at, labelled = self.predictions[key]
        self.predictions[key] = (version, at, True)
        windowed = self.stage.counts["labels_windowed"]
        self.stage.label(Sample(model=key[0], model_version=version, request_id=key[1],
                                prediction=None), label)
        if labelled:  # a repeat replaces the label
            self.counts["duplicate"] += 1
        elif self.stage.counts["labels_windowed"] > windowed:
            self.counts["joined"] += 1
        else:  # a full window's sample let the prediction go before its label came
            self.counts["outside_windows"] += 1

    def finish(self) -> None:
        """End of input: labels still waiting never saw their prediction (or no window
        kept it)."""
        for key in self.labels:
            kept = not self.unkept or hash(key) not in self.unkept
            self.counts["unmatched" if kept else "outside_windows"] += 1
        self.labels.clear()


def records(path: Path, rejected: Counter[str], disorder: Disorder | None = None
            ) -> Iterator[tuple[float, int, Sample | Label]]:
    """(time, order, record) in file order; a record without a time takes the previous one."""
    last, order = 0.0, 0
    disorder = Disorder() if disorder is None else disorder
    with open_lines(path) as fh:
        for lines in _chunks(fh, disorder):
            for record, reason in decode_many(lines):
                if record is None:
                    rejected[reason] += 1
                    continue
                ts = parse_ts(record.ts)
                if ts is None and record.ts is not None:
                    rejected["invalid_field"] += 1  # a time that is unreadable or out of range
                    continue
                if ts is not None and ts < last:
                    disorder.records += 1
                    disorder.lag = max(disorder.lag, last - ts)
                    ts = last
                last = last if ts is None else ts
                order += 1
                yield last, order, record


def _chunks(fh: IO[bytes], trouble: Disorder) -> Iterator[list[bytes]]:
    """Non-blank lines, CHUNK at a time. A truncated or corrupt gzip file ends the file where
    it breaks (what came before still counts); the reason goes to `trouble.cut`."""
    chunk: list[bytes] = []
    try:
        for line in fh:
            if line.strip():
                chunk.append(line)
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
    except (EOFError, OSError, zlib.error) as exc:
        trouble.cut = str(exc) or type(exc).__name__
    if chunk:
        yield chunk


class Lines:
    """Window lines as JSON text. A section a monitor hands a window's final pass as the very
    object it gave the first (drift's verdicts: ~6 KB, most of a line) is encoded once:
    sections are read, not written, once their monitor returns (docs/plugins.md)."""

    def __init__(self, kept: int = SECTIONS_KEPT) -> None:
        self.kept = kept
        self.sections: dict[int, tuple[object, msgspec.Raw]] = {}  # id -> (section, its JSON)

    def encode(self, line: dict[str, Any]) -> str:
        for key, value in line.items():
            if type(value) is dict and key in SECTIONS:
                line[key] = self._section(value)
        return msgspec.json.encode(line).decode() + "\n"

    def _section(self, value: dict[str, Any]) -> msgspec.Raw:
        found = self.sections.get(id(value))
        if found is not None and found[0] is value:  # held here: its id is its own
            return found[1]
        raw = msgspec.Raw(msgspec.json.encode(value))
        self.sections[id(value)] = (value, raw)
        if len(self.sections) > self.kept:
            del self.sections[next(iter(self.sections))]
        return raw


class Replay:
    def __init__(self, config: Config, plugins: Plugins, *, windows: Sequence[str] = (),
                 out: IO[str]) -> None:
        ingest = config.plugins.get("ingest")
        settings = ingest if isinstance(ingest, IngestConfig) else IngestConfig()
        self.config, self.plugins, self.out = config, plugins, out
        self.lines = Lines()
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
        redactor = settings.redaction.redactor(settings.redact) if settings.redact else None
        self.pipeline = Pipeline(models, self.stage, self.join.add_many, redactor)
        self.rejected: Counter[str] = Counter()
        self.monitors: list[Monitor] = []
        self.monitor_plugins: set[str] = set()
        self.events: list[Event] = []
        self.windows = 0
        self.references: list[Path] = []  # drift reference profiles, for monitors that take them
        self.labels = LabelTally()
        self.off = turned_off(config.path)  # plugins the file turns off in so many words
        self.with_results = 0  # windows that carry some monitor's results
        # Per (model, version): replay's counts, and what monitors add (replay_summary()).
        self.streams: dict[tuple[str, str], dict[str, Any]] = {}
        self.disorder: dict[Path, Disorder] = {}  # per input file

    async def run(self, samples: Path, labels: Path | None) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="inferwatch-replay-") as scratch:
            await self._start_monitors(Path(scratch))
            try:
                self.disorder = {samples: Disorder()}
                streams = [records(samples, self.rejected, self.disorder[samples])]
                if labels is not None:
                    self.disorder[labels] = Disorder()
                    streams.append(records(labels, self.rejected, self.disorder[labels]))
                # Merged on time; at equal times the samples file first, then file order.
                merged = heapq.merge(*(_keyed(s, i) for i, s in enumerate(streams)),
                                     key=lambda item: item[0])
                for (ts, _, _), record in merged:
                    self.join.now = ts
                    if self.stage.due(ts):
                        for window in self.stage.advance(ts):
                            await self._window(window)
                    if type(record) is Label:
                        self.labels.read += 1
                    if reason := self.pipeline.offer(record, ts, ts):
                        self._refused(record, reason)
                    elif type(record) is Sample and self.join.last_sample is not record:
                        self.join.not_kept(record)  # no window kept it
                for window in self.stage.flush():
                    await self._window(window)
                self.join.finish()
                self._monitor_summaries()
            finally:
                for monitor in self.monitors:
                    await monitor.stop()
        return self.summary()

    def _refused(self, record: Sample | Label, reason: str) -> None:
        if reason == UNKNOWN_MODEL:
            self.rejected[reason] += 1
        if type(record) is Label:
            self.labels.refused[reason] += 1

    def _monitor_summaries(self) -> None:
        """Monitors with a `replay_summary()` add to each stream's entry (e.g. the drift
        reference it used): {(model, model_version): {key: plain value}}."""
        for key, stream in self.stage.streams.items():
            self.streams.setdefault(key, {"windows": 0})["samples"] = stream.count
        for monitor in self.monitors:
            contribute = getattr(monitor, "replay_summary", None)
            for key, found in (contribute() if contribute is not None else {}).items():
                self.streams.setdefault(key, {"windows": 0}).update(plain(found))

    async def _start_monitors(self, scratch: Path) -> None:
        for name, settings in sorted(self.config.plugins.items()):
            # Every monitor, unless the file (-c) says `enabled = false` for its plugin: a
            # file written for the agent, where monitors are opt-in, must not silence them.
            if name in self.off:
                continue
            for component in await self._components(name, _quiet(settings), scratch):
                if isinstance(component, Monitor):
                    component.exports.wanted = False  # replay exports no series
                    await component.start()
                    self._prepare(component)
                    self.monitors.append(component)
                    self.monitor_plugins.add(name)

    def _prepare(self, monitor: Monitor) -> None:
        """Monitors that take references get them."""
        take = getattr(monitor, "load_reference", None)  # a file: read by its own monitor
        if take is None:
            return
        for path in self.references:
            try:
                take(path)
            except ValueError as exc:
                raise ConfigError([f"--reference: {exc}"]) from None

    async def _components(self, name: str, settings: PluginConfig, scratch: Path) -> list[Any]:
        ctx = PluginContext(
            plugin=name, config=settings, host_id=self.config.agent.host_id,
            # A scratch state dir: a replay neither reads what the running agent learnt (its
            # captured references) nor leaves anything behind, so it repeats exactly.
            state_root=scratch,
            metrics=PluginMetrics(name, self.config.prometheus.series_limit_per_plugin),
            emitter=self._collect, hook=self.plugins.manager.hook,
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
            events += await process_window(monitor, window)
        self.windows += 1
        self.with_results += any(window.results.values())
        stream = self.streams.setdefault((window.model, window.model_version), {"windows": 0})
        stream["windows"] += window.final
        self._print(window_line(window))
        # A monitor's per-window summary (quality.window, drift.window) repeats the line above.
        said = [e for e in [*self.events, *events] if e.kind not in SUMMARIES]
        for i, event in enumerate(said):
            self._print({"type": "event", **msgspec.to_builtins(_fixed(event, window, i))})
        self.events.clear()

    def _print(self, line: dict[str, Any]) -> None:
        self.out.write(self.lines.encode(line))  # one write a line

    def summary(self) -> dict[str, Any]:
        return {"windows": self.windows, "samples": sum(self.pipeline.seen.values()),
                "sampled_out": sum(self.pipeline.sampled_out.values()),
                "labels_joined": self.join.counts["joined"],
                "labels": self.labels.outcomes(self.join.counts),
                "rejected": dict(sorted(self.rejected.items())),
                "out_of_order": sum(d.records for d in self.disorder.values()),
                "cut_short": [f"{p}: {d.cut}" for p, d in self.disorder.items() if d.cut],
                "streams": stream_summary(self.streams)}

    def notes(self, summary: dict[str, Any]) -> list[str]:
        """What stderr should say beyond the summary: hints on labels, and why the output
        has no monitor results when it has none."""
        labels = summary["labels"]
        return [*disorder_notes(self.disorder),
                *label_notes(labels, self.join.ttl, self.join.longest_late),
                *silence_notes(monitors=self.monitor_plugins,
                               off=self.off, path=self.config.path, windows=self.windows,
                               with_results=self.with_results, samples=summary["samples"],
                               labels=labels)]


SUMMARIES = frozenset({"quality.window", "drift.window", "profile.window"})
QUIET = {"window_events": False, "fleet_profiles": False}


def _quiet(settings: Any) -> Any:
    """A monitor's settings without its per-window summaries: replay's window lines say more,
    and building them cost ~0.8 ms a window."""
    off = {k: v for k, v in QUIET.items() if hasattr(settings, k)}
    return msgspec.structs.replace(settings, **off) if off else settings


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
        "window": window.spec, "start": _stamp(window.start),
        "end": _stamp(window.end), "final": window.final, "n": window.n,
        "n_labeled": int(window.labeled.sum()), "metrics": results.get("metrics", {}),
        "estimated": results.get("estimated", {}), "drift": results.get("drift", {}),
        "quality": quality,
        **{k: v for k, v in results.items()
           if k not in ("metrics", "estimated", "drift", "quality")},
    }


@functools.lru_cache(maxsize=256)
def _stamp(ts: float) -> str:
    """utc_timestamp, once per time: a window's two lines and its neighbours share theirs
    (formatting one cost ~4 us, four a window)."""
    return utc_timestamp(ts)


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
    summary = asyncio.run(runner.run(samples, labels))
    for note in runner.notes(summary):
        print(f"inferwatch: replay: {note}", file=sys.stderr)
    return summary
