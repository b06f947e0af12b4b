"""Which reference each model version's stream is judged against, and where it came from.

A reference given for the stream's exact version (`inferwatch replay --reference`, or a
configured file whose profile names that version) wins; else one given without a version,
which applies to every version of its model (`reference build` without `--model-version`);
else the one captured from the stream's own first `reference_samples` rows (kept in the
state dir across restarts). A given reference that never applies, or a stream of a model
with given references none of which applies, is a warning that names both: a reference
must never be ignored without a word.

Threads: `resolve` and `capture` run in the monitor's worker thread and only read; what
they found goes back in the `Step`, and `commit` applies it on the event loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent.context import PluginContext
from agent.metrics import Accumulator
from plugins.drift import statistics as st
from plugins.drift.config import DriftConfig
from plugins.drift.profile import Profile, build, findings
from plugins.drift.sequential import Cusums

log = structlog.get_logger("inferwatch")
Ident = tuple[str, str]  # model, model_version
STREAMS_NAMED = 20  # streams listed in a warning
CAPTURED = "captured"


@dataclass
class Given:
    """A reference the user supplied; `streams`: those it was applied to."""

    prepared: st.Prepared
    source: str
    streams: set[Ident] = field(default_factory=set)


@dataclass
class Step:
    """What one window's computation found, and the state changes it asks for."""

    ident: Ident
    first_spec: str
    results: dict[str, Any] | None = None
    reference: st.Prepared | None = None  # resolved or captured for this stream just now
    source: str = ""  # where it came from: a file, CAPTURED
    given: Ident | None = None  # the given reference's key, when it is one
    part: dict[str, np.ndarray] | None = None  # rows kept toward a capture
    fresh: bool = False  # the reference was captured from this window's rows
    cusums: Cusums | None = None  # the stream's detectors, the window's updated
    read_until: float | None = None  # the end of the rows a capture or the CUSUMs now read
    series: Accumulator | None = None  # the window's series (exports.py), built with it
    cusum_series: Accumulator | None = None  # the stream's CUSUM series, updated
    errors: Counter[str] = field(default_factory=Counter)  # plugins' statistics that failed


class References:
    def __init__(self, config: DriftConfig, ctx: PluginContext) -> None:
        self.config, self.ctx = config, ctx
        self.given: dict[Ident, Given] = {}  # by (model, version or "")
        self.active: dict[Ident, st.Prepared] = {}  # the one each stream uses
        self.sources: dict[Ident, str] = {}
        self.capturing: dict[Ident, list[dict[str, np.ndarray]]] = {}

    async def load_configured(self) -> None:
        """`[plugins.drift.models.<name>] reference`, under the model it is configured for."""
        for model, settings in sorted(self.config.models.items()):
            if not settings.reference:
                continue
            path = Path(settings.reference)
            try:
                profile = await asyncio.to_thread(Profile.load, path)
            except ValueError as exc:
                log.error("drift reference unusable", path=str(path), error=str(exc))
                continue
            if profile.model != model:
                log.warning("drift reference profiles another model; used as configured",
                            path=str(path), profile_model=profile.model, model=model)
                profile.model = model
            self.give(profile, str(path))

    def give(self, profile: Profile, source: str = "") -> None:
        """A profile for its model and version ("" for every version); on the loop."""
        key = (profile.model, profile.model_version)
        self.given[key] = Given(st.Prepared(profile), source or f"{key[0]} {key[1]}".strip())
        for ident in [i for i in self.active if i[0] == key[0]]:
            if self.given_key(ident) == key:  # it applies from the next window on
                del self.active[ident]

    def given_key(self, ident: Ident) -> Ident | None:
        for key in (ident, (ident[0], "")):  # the exact version wins
            if key in self.given:
                return key
        return None

    # -- worker thread --------------------------------------------------------------------

    def resolve(self, step: Step) -> st.Prepared | None:
        """The stream's reference: in use, given, or captured earlier (state dir)."""
        found = self.active.get(step.ident)
        if found is not None:
            return found
        key = self.given_key(step.ident)
        if key is not None:
            step.given, step.source = key, self.given[key].source
            step.reference = self.given[key].prepared
            return step.reference
        path = self.ctx.state_file("reference", step.ident)
        if path.exists():
            try:
                step.reference = st.Prepared(Profile.load(path))
            except ValueError as exc:
                log.error("drift reference unusable", path=str(path), error=str(exc))
                return None
            step.source = CAPTURED
        return step.reference

    def capture(self, step: Step, columns: dict[str, np.ndarray]) -> None:
        """The first `reference_samples` rows become the reference (built and saved here);
        until then the rows go back in the step, to be kept by commit()."""
        parts = [*self.capturing.get(step.ident, ()), columns]
        if _rows(parts) < self.config.reference_samples:
            step.part = columns
            return
        merged = _merged(parts)
        profile = build(merged, model=step.ident[0], model_version=step.ident[1])
        step.reference, step.source, step.fresh = st.Prepared(profile), CAPTURED, True
        try:
            self.ctx.state_dir()
            profile.save(self.ctx.state_file("reference", step.ident))
        except (OSError, ValueError) as exc:
            log.warning("cannot save the captured drift reference", error=str(exc))

    # -- event loop -----------------------------------------------------------------------

    def commit(self, step: Step, *, new: bool) -> None:
        """Apply what resolve() or capture() found; `new`: the stream's first window."""
        ident = step.ident
        if step.reference is not None and ident not in self.active:
            self.active[ident], self.sources[ident] = step.reference, step.source
            if step.given is not None:
                self.given[step.given].streams.add(ident)
            self.capturing.pop(ident, None)
            if step.fresh:
                self._captured(ident, step.reference.profile)
        elif step.part is not None:
            self.capturing.setdefault(ident, []).append(step.part)
        if new and step.given is None:
            self._unmatched(ident)

    def _captured(self, ident: Ident, profile: Profile) -> None:
        log.info("drift reference captured", model=ident[0], model_version=ident[1],
                 rows=profile.count)
        if aside := findings(profile):
            log.warning("drift reference: values set aside as extreme or non-finite",
                        model=ident[0], model_version=ident[1], features=aside)

    def _unmatched(self, ident: Ident) -> None:
        """A stream of a model with given references, none of which applies to it."""
        names = [g.source for k, g in sorted(self.given.items()) if k[0] == ident[0]]
        if names:
            log.warning("no given drift reference applies to this model version; it is "
                        "judged against one captured from its own rows", model=ident[0],
                        model_version=ident[1], references=names)

    def summary(self, streams: list[Ident]) -> dict[Ident, dict[str, Any]]:
        """Which reference each stream used (replay's per-stream summary); the given ones that
        matched none are warned about by warn_unused()."""
        used: dict[Ident, dict[str, Any]] = {}
        for ident in streams:
            if ident in self.active:
                source, rows = self.sources[ident], self.active[ident].profile.count
            else:
                rows = _rows(self.capturing.get(ident, []))
                source = f"none yet: capturing ({rows} of {self.config.reference_samples} rows)"
            used[ident] = {"drift_reference": source, "drift_reference_rows": rows}
        return used

    def warn_unused(self, streams: list[Ident]) -> None:
        seen = [f"{m}/{v}" if v else m for m, v in streams]
        if len(seen) > STREAMS_NAMED:
            seen[STREAMS_NAMED:] = [f"... {len(seen) - STREAMS_NAMED} more"]
        for key, given in sorted(self.given.items()):
            if not given.streams:
                log.warning("drift reference matched no stream", reference=given.source,
                            model=key[0], model_version=key[1] or "*", streams_seen=seen)


def _merged(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The parts' rows, every feature any of them had: an optional feature that no row of
    one window carried is missing there (NaN, or None for a categorical), not dropped from
    the reference for good. Sorted names, not set order: replays agree."""
    names = sorted(set().union(*parts))
    merged = {}
    for name in names:
        present = [p[name] for p in parts if name in p]
        categorical = any(column.dtype == object for column in present)
        merged[name] = np.concatenate([
            p[name] if name in p else _missing(_length(p), categorical) for p in parts])
    return merged


def _missing(rows: int, categorical: bool) -> np.ndarray:
    return np.full(rows, None, dtype=object) if categorical else np.full(rows, np.nan)


def _length(part: dict[str, np.ndarray]) -> int:
    return len(next(iter(part.values()), ()))


def _rows(parts: list[dict[str, np.ndarray]]) -> int:
    return sum(_length(p) for p in parts)
