"""Per-model windows: samples collect in panes (one window step each), panes become columns
once, and a window is the concatenation of its last `size/step` panes.

A window is handed out when its last pane closes (`final = False`, with the labels joined so
far) and again `label_wait` later (`final = True`, with every label that came in time); with
`label_wait = 0` only the final one. Time is the caller's: wall time in the agent, sample
time in `inferwatch replay`. Memory is bounded by `max_rows` per window (beyond it a uniform
sample: the rows whose request ids hash lowest; `n` still counts everything). Only the
predictions a pane keeps go on to the label join: a label for any other could land nowhere.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec
import numpy as np

from agent.model import Label, Sample
from agent.window import Window, WindowSpec
from plugins.ingest import columns as col
from plugins.ingest.assemble import FirstMade, assemble
from plugins.ingest.bounds import Admission, Limits, Names
from plugins.ingest.join import Joined
from plugins.ingest.models import HASH_SPACE, ModelConfig, request_hash

SLOT = (1 << 32) - 1
EARLY_LABELS = 10_000  # labels held back in memory, waiting for a prediction a pane keeps


@dataclass
class Pane:
    stream: Stream
    spec: WindowSpec
    start: float
    end: float
    cap: int
    samples: list[Sample] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    labels: dict[str, object] = field(default_factory=dict)  # request id -> label, until built
    seen: int = 0
    closed_at: float = 0.0
    columns: col.Columns | None = None
    classes: list[str] = field(default_factory=list)
    base: int = 0  # how many of `classes` were the stream's when the pane was built
    finalized: bool = False
    # Bottom-k sampling: the `cap` samples with the smallest request-id hash, a uniform sample
    # that a label can be checked against (`threshold`) without storing its prediction.
    heap: list[int] = field(default_factory=list)  # -(hash << 32 | slot): the max on top
    threshold: int = HASH_SPACE  # a hash at or above this cannot enter (once full)
    # The window this pane ends, from its first pass, for its final pass (assemble): the
    # same panes under the same class order give the same arrays; only labels are new.
    first_made: FirstMade | None = None

    def add(self, sample: Sample, ts: float, h: int) -> bool:
        """Whether the pane keeps the sample (`h`: its request-id hash)."""
        self.seen += 1
        if h >= self.threshold:
            return False
        if sample.features_json:  # a view into the buffer it came in: keep only its part
            msgspec.structs.force_setattr(sample, "features_json", sample.features_json.copy())
        if len(self.samples) < self.cap:
            slot = len(self.samples)
            self.samples.append(sample)
            self.ts.append(ts)
            heapq.heappush(self.heap, -(h << 32 | slot))
            if slot + 1 == self.cap:
                self.threshold = -self.heap[0] >> 32
        else:
            slot = -self.heap[0] & SLOT  # the largest hash kept leaves; the new one takes its slot
            heapq.heapreplace(self.heap, -(h << 32 | slot))
            old = self.samples[slot].request_id
            if self.index.get(old) == slot:  # a repeated request id may point elsewhere
                del self.index[old]
            self.samples[slot], self.ts[slot] = sample, ts
            self.threshold = -self.heap[0] >> 32
        self.index[sample.request_id] = slot
        return True

    def add_many(self, samples: list[Sample], hashes: list[int], ts: float) -> list[int]:
        """Like add() for each; the indices of those kept. A full pane skips most unseen."""
        kept, i, n = [], 0, len(samples)
        while i < n and len(self.samples) < self.cap:  # filling: every sample enters
            if self.add(samples[i], ts, hashes[i]):
                kept.append(i)
            i += 1
        if i < n:
            limit = self.threshold  # only falls as samples enter: a superset of the takers
            candidates = [j for j in range(i, n) if hashes[j] < limit]
            self.seen += n - i - len(candidates)
            kept += [j for j in candidates if self.add(samples[j], ts, hashes[j])]
        return kept

    def build(self) -> None:
        """The expensive part; safe in a worker thread (reads only this pane's lists)."""
        stream = self.stream
        self.classes = list(stream.classes)  # a copy: the loop may add classes meanwhile
        self.base = len(self.classes)
        self.columns = col.build(self.samples, self.ts, task=stream.task,
                                 classes=self.classes, config=stream.config,
                                 names=stream.names)
        self.samples, self.ts, self.index = [], [], {}

    def merge_classes(self) -> None:
        """Back on the caller's thread: this pane's class indices into the stream's."""
        assert self.columns is not None  # noqa: S101 - after build()
        stream = self.stream
        if stream.task == "classification" and len(self.classes) > self.base:
            # Classes only ever append: the first `base` are the stream's, in its order.
            extra = [col.code(stream.codes, stream.classes, c, stream.names.classes,
                              stream.folded) for c in self.classes[self.base:]]
            remap = np.concatenate([np.arange(self.base, dtype=np.int64),
                                    np.array(extra, np.int64)])
            self.columns.y_pred = remap[self.columns.y_pred]

    def label(self, request_id: str, value: object) -> bool:
        if self.columns is None:
            if request_id not in self.index:
                return False
            self.labels[request_id] = value
            return True
        row = self.columns.index.get(request_id)
        if row is None:
            return False
        self.stream.set_label(self.columns.y_true, row, value)
        return True

    def apply_labels(self) -> None:
        assert self.columns is not None  # noqa: S101 - after build()
        for request_id, value in self.labels.items():
            row = self.columns.index.get(request_id)
            if row is not None:
                self.stream.set_label(self.columns.y_true, row, value)
        self.labels = {}


class Stream:
    """One (model, model version): its panes per window spec."""

    def __init__(self, model: str, version: str, config: ModelConfig, specs: list[WindowSpec],
                 *, max_rows: int, names: col.StreamNames) -> None:
        self.model, self.version, self.config = model, version, config
        self.specs, self.max_rows, self.names = specs, max_rows, names
        self.task = "" if config.task == "auto" else config.task
        self.classes: list[str] = list(config.classes)
        self.codes = {name: i for i, name in enumerate(self.classes)}  # kept with `classes`
        self.open: dict[WindowSpec, Pane] = {}
        self.closed: dict[WindowSpec, deque[Pane]] = {spec: deque() for spec in specs}
        self.pending: list[Pane] = []  # closed, not yet retired (being built)
        self.folded: Counter[str] = Counter()  # names folded into `_other` on the loop, by kind
        self.count = 0
        self._order: tuple[int, list[str], dict[str, int], np.ndarray] = (
            -1, [], {}, np.empty(0, np.int64))

    def order(self) -> tuple[list[str], dict[str, int], np.ndarray]:
        """The classes in window order, each one's position, and the map from the stream's
        codes to those positions (-1 stays -1); worked out once per new class, not per window."""
        if self._order[0] != len(self.classes):
            names = col.class_order(self.classes)
            position = {name: i for i, name in enumerate(names)}
            remap = np.array([position[c] for c in self.classes] + [-1], np.int64)
            self._order = (len(self.classes), names, position, remap)
        return self._order[1], self._order[2], self._order[3]

    def detect(self, sample: Sample) -> None:
        if self.task:
            return
        regression = (sample.scores is None and sample.score is None
                      and isinstance(sample.prediction, float)
                      and not sample.prediction.is_integer())
        self.task = "regression" if regression else "classification"

    def set_label(self, y_true: np.ndarray, row: int, value: object) -> None:
        if self.task == "classification":
            y_true[row] = col.code(self.codes, self.classes, value, self.names.classes,
                                   self.folded)
        else:
            y_true[row] = col.to_number(value)

    def pane_for(self, spec: WindowSpec, ts: float) -> tuple[float, float]:
        if spec.by_count:
            return ts, math.inf
        start = math.floor(ts / spec.step) * spec.step
        return start, start + spec.step


class WindowStage:
    def __init__(self, models: dict[str, ModelConfig], windows: list[str], *,
                 max_rows: int = 100_000, max_features: int = 200,
                 label_wait: float = 3600.0, limits: Limits | None = None) -> None:
        self.models = models
        self.default_specs = [WindowSpec.parse(w) for w in windows]
        self.max_rows, self.max_features, self.label_wait = max_rows, max_features, label_wait
        self.limits = limits or Limits()
        self.admission = Admission(self.limits, models)
        self.streams: dict[tuple[str, str], Stream] = {}
        self.by_model: dict[str, list[Stream]] = {}
        self.ready: list[Pane] = []  # count panes that filled up, waiting for close_due()
        self.counts: Counter[str] = Counter()
        self._early: dict[tuple[str, str], Label] = {}  # labels held back by wanted()
        self.horizon = math.inf  # nothing is due before this time (unless `ready`)
        self.quality: Counter[tuple[str, str, str]] = Counter()  # (model, feature, issue)

    def stream(self, sample: Sample) -> Stream:
        key = (sample.model, sample.model_version)
        stream = self.streams.get(key)
        if stream is None:
            config = self.models.get(sample.model) or ModelConfig()
            specs = [WindowSpec.parse(w) for w in config.windows] or self.default_specs
            names = col.StreamNames(max(self.limits.max_classes, len(config.classes)),
                                    self.max_features, Names(self.limits.max_groups))
            stream = self.streams[key] = Stream(*key, config, specs, max_rows=self.max_rows,
                                                names=names)
            self.by_model.setdefault(sample.model, []).append(stream)
        return stream

    def add(self, sample: Sample, ts: float, now: float) -> bool:
        """`ts`: the sample's time (a sample for a closed pane goes to the current one).

        Whether any pane kept it: only those need their label.
        """
        stream = self.stream(sample)
        stream.detect(sample)
        stream.count += 1
        h, kept = request_hash(sample.request_id), False
        for spec in stream.specs:
            pane, ts = self._pane(stream, spec, ts, now)
            kept = pane.add(sample, ts, h) or kept
            if spec.by_count and pane.seen >= spec.step:
                pane.end = ts
                self._close(stream, spec, pane, now)
        return kept

    def add_many(self, samples: list[Sample], now: float) -> list[Sample]:
        """The agent's path: a batch that arrived at `now`; returns the samples a pane kept."""
        if len({s.model for s in samples}) == 1 and len({s.model_version for s in samples}) == 1:
            groups = [samples]  # the usual batch: one model, one version
        else:
            by_key: dict[tuple[str, str], list[Sample]] = {}
            for sample in samples:
                by_key.setdefault((sample.model, sample.model_version), []).append(sample)
            groups = list(by_key.values())
        out: list[Sample] = []
        for group in groups:
            stream = self.stream(group[0])
            stream.detect(group[0])
            stream.count += len(group)
            hashes = [request_hash(s.request_id) for s in group]
            kept: set[int] = set()
            for spec in stream.specs:
                if spec.by_count:
                    for i, sample in enumerate(group):
                        pane, _ = self._pane(stream, spec, now, now)
                        if pane.add(sample, now, hashes[i]):
                            kept.add(i)
                        if pane.seen >= spec.step:
                            pane.end = now
                            self._close(stream, spec, pane, now)
                else:
                    pane, _ = self._pane(stream, spec, now, now)
                    kept.update(pane.add_many(group, hashes, now))
            out += group if len(kept) == len(group) else [group[i] for i in sorted(kept)]
        return out

    def folded(self) -> Counter[str]:
        """Values folded into `_other` by a bound, by kind (model_version, class, ...)."""
        out = Counter(self.admission.folded)
        for stream in self.streams.values():
            out.update(stream.folded)
        return out

    def wanted(self, labels: list[Label]) -> list[Label]:
        """The labels whose prediction a pane may hold; the others are not stored.

        A model with no pane yet keeps them all: a label may come before its prediction.
        The others wait in memory (the last EARLY_LABELS) in case it comes before them and
        a new pane keeps it (`early()`); a label that leaves that wait is counted outside.
        """
        limits: dict[str, int] = {}
        out = []
        for label in labels:
            limit = limits.get(label.model)
            if limit is None:
                limit = limits[label.model] = self._limit(label.model)
            if request_hash(label.request_id) <= limit:  # the highest kept is in
                out.append(label)
                continue
            key = (label.model, label.request_id)
            self._early.pop(key, None)  # a newer label for it: to the end, as it is newest
            self._early[key] = label
            if len(self._early) > EARLY_LABELS:
                del self._early[next(iter(self._early))]
                self.counts["labels_outside_windows"] += 1
        return out

    def early(self, kept: list[Sample]) -> list[Label]:
        """Labels that came before these (just kept) predictions and were held back."""
        if not self._early:
            return []
        found = [self._early.pop((s.model, s.request_id), None) for s in kept]
        return [label for label in found if label is not None]

    def _limit(self, model: str) -> int:
        """The highest hash a live pane of `model` admits (HASH_SPACE: any).

        Once per label: with small windows and a long label wait there are hundreds of live
        panes, so it stops at the first pane that is not full (it admits any hash).
        """
        highest = -1
        for pane in self._live(model):
            if pane.threshold >= HASH_SPACE:
                return HASH_SPACE
            highest = max(highest, pane.threshold)
        return highest if highest >= 0 else HASH_SPACE

    def _live(self, model: str) -> Iterator[Pane]:
        """The pending, open and closed (not yet dropped) panes of every version of `model`."""
        for stream in self.by_model.get(model, ()):
            yield from stream.pending
            yield from stream.open.values()
            for closed in stream.closed.values():
                yield from reversed(closed)  # the newest is the likeliest not full

    def _pane(self, stream: Stream, spec: WindowSpec, ts: float, now: float
              ) -> tuple[Pane, float]:
        """The open pane for a sample at `ts` (closing one it has outlived); and its time."""
        pane = stream.open.get(spec)
        if pane is not None and not spec.by_count and not pane.start <= ts < pane.end:
            if ts < pane.start:
                self.counts["late_samples"] += 1
                return pane, pane.start  # a late sample counts in the open pane
            self._close(stream, spec, pane, now)
            pane = None
        if pane is None:
            start, end = stream.pane_for(spec, ts)
            if not spec.by_count and end <= now:
                self.counts["late_samples"] += 1
                start, end = stream.pane_for(spec, now)
            cap = max(1, math.ceil(self.max_rows / spec.panes))
            pane = stream.open[spec] = Pane(stream, spec, start, end, cap)
            self.horizon = min(self.horizon, end)
        return pane, ts

    def _close(self, stream: Stream, spec: WindowSpec, pane: Pane, now: float) -> None:
        del stream.open[spec]
        pane.closed_at = now
        self.ready.append(pane)
        stream.pending.append(pane)

    def labels(self, pairs: Iterable[Joined]) -> None:
        for pair in pairs:
            self.label(pair.sample, pair.label)

    def label(self, sample: Sample, label: Label) -> None:
        """A joined pair: the label lands in every window that still holds the sample."""
        stream = self.streams.get((sample.model, sample.model_version))
        found = False
        if stream is not None:
            rid, value = sample.request_id, label.label
            for spec in stream.specs:
                current = stream.open.get(spec)
                if current is not None and current.label(rid, value):
                    found = True
                    continue
                for pane in reversed(stream.closed[spec]):  # most labels are for recent ones
                    if pane.label(rid, value):
                        found = True
                        break
                else:
                    found = any(p.label(rid, value) for p in stream.pending
                                if p.spec == spec) or found
        self.counts["labels_windowed" if found else "labels_outside_windows"] += 1

    def close_due(self, now: float) -> list[Pane]:
        """Panes to build: time panes that ended by `now`, count panes that filled up."""
        for stream in self.streams.values():
            for spec, pane in list(stream.open.items()):
                if pane.end <= now:
                    self._close(stream, spec, pane, now)
        due, self.ready = self.ready, []
        return due

    def retire(self, panes: Iterable[Pane], now: float, limit: int | None = None
               ) -> list[Window]:
        """Built panes join their streams; each yields its window (not final, unless no wait)."""
        out = []
        for pane in panes:
            pane.stream.pending.remove(pane)
            pane.merge_classes()
            pane.apply_labels()
            assert pane.columns is not None  # noqa: S101 - built before retire()
            pane.stream.folded.update(pane.columns.folded)
            for feature, issues in pane.columns.quality.items():
                for issue, count in issues.items():
                    self.quality[(pane.stream.model, feature, issue)] += count
            pane.stream.closed[pane.spec].append(pane)
            if self.label_wait > 0:
                out.append(self._window(pane, final=False))
        return out + self.finalize_due(now, limit)

    def finalize_due(self, now: float, limit: int | None = None) -> list[Window]:
        """The windows whose label wait is over; at most `limit` (the rest stay due)."""
        out: list[Window] = []
        for stream in self.streams.values():
            for spec, closed in stream.closed.items():
                for pane in closed:
                    if limit is not None and len(out) >= limit:
                        break
                    if not pane.finalized and pane.closed_at + self.label_wait <= now:
                        pane.finalized = True
                        out.append(self._window(pane, final=True))
                _prune(closed, spec)
        self.horizon = self._next_horizon()
        return out

    def due(self, now: float) -> bool:
        """Cheap: whether advance(now) would have anything to do."""
        return bool(self.ready) or now >= self.horizon

    def _next_horizon(self) -> float:
        ends = [p.end for s in self.streams.values() for p in s.open.values()]
        ends += [p.closed_at + self.label_wait for s in self.streams.values()
                 for closed in s.closed.values() for p in closed if not p.finalized]
        return min(ends, default=math.inf)

    def advance(self, now: float) -> list[Window]:
        """Close, build and hand out everything due by `now`, in this thread (replay)."""
        due = self.close_due(now)
        for pane in due:
            pane.build()
        return self.retire(due, now)

    def flush(self) -> list[Window]:
        """End of input: every open pane closes, every window becomes final."""
        out = self.advance(math.inf)
        for stream in self.streams.values():
            for closed in stream.closed.values():
                closed.clear()
        return out

    def _window(self, last: Pane, *, final: bool) -> Window:
        stream, spec = last.stream, last.spec
        panes = _window_panes(stream.closed[spec], last, spec)
        window = assemble(stream, spec, panes, final=final, keep=not final)
        if final:
            last.first_made = None
        return window


def _prune(closed: deque[Pane], spec: WindowSpec) -> None:
    """Drop final panes no window still needs (the next window needs the last panes-1)."""
    while len(closed) > spec.panes - 1 and closed[0].finalized:
        members = list(closed)
        if any(not p.finalized and (i < spec.panes if spec.by_count
                                    else _covers(p, members[0], spec))
               for i, p in enumerate(members)):
            return
        closed.popleft()


def _covers(last: Pane, pane: Pane, spec: WindowSpec) -> bool:
    if spec.by_count:
        return False
    return last.end - spec.size < pane.end <= last.end


def _window_panes(closed: deque[Pane], last: Pane, spec: WindowSpec) -> list[Pane]:
    if spec.panes == 1:
        return [last]
    if spec.by_count:
        members = list(closed)
        position = members.index(last)
        return members[max(0, position - spec.panes + 1):position + 1]
    return [p for p in closed if _covers(last, p, spec)]
