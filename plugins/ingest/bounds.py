"""Bounds on the names clients choose: models, versions, classes, features, groups.

Every such name becomes a key somewhere (a stream, a column, a series), so each set is
bounded, first come first kept; the excess folds into `_other` or is refused, and counted.
Lookups are one dict access: these run per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from agent.model import Label, Sample

OTHER = "_other"
MAX_NAME = 256  # characters of a model, version or group name; longer ones are not names


class Names:
    """At most `limit` distinct names (the `reserved` ones always among them)."""

    __slots__ = ("folded", "limit", "names")

    def __init__(self, limit: int, reserved: Iterable[str] = ()) -> None:
        self.names: dict[str, None] = dict.fromkeys(reserved)
        self.limit = max(limit, len(self.names))
        self.folded = 0  # values refused or folded because the set was full

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __len__(self) -> int:
        return len(self.names)

    def admit(self, name: str) -> bool:
        """Whether `name` is (now) one of the kept names."""
        if name in self.names:
            return True
        if len(self.names) >= self.limit or len(name) > MAX_NAME:
            self.folded += 1
            return False
        self.names[name] = None
        return True

    def fold(self, name: str) -> str:
        """`name` if kept, else `_other`."""
        return name if self.admit(name) else OTHER


TOO_MANY_MODELS = "too_many_models"


@dataclass(frozen=True)
class Limits:
    """`[plugins.ingest]`'s bounds on client-chosen names (docs/ingestion.md, "Limits")."""

    max_models: int = 100
    max_versions: int = 10  # per model
    max_streams: int = 200  # (model, version) pairs in all, besides one `_other` per model
    max_classes: int = 1000  # per stream
    max_groups: int = 100  # per stream


class Admission:
    """Which models get a stream, and which of their versions: per record, O(1)."""

    def __init__(self, limits: Limits, declared: Iterable[str] = ()) -> None:
        self.limits = limits
        self.models = Names(limits.max_models, declared)
        self.versions: dict[str, Names] = {}
        self.known: set[tuple[str, str]] = set()  # (model, version) admitted as they are
        self.folded: Counter[str] = Counter()  # by kind: model_version
        self.streams = 0

    def knows(self, samples: Sequence[Sample]) -> bool:
        """Whether every (model, version) of these samples already has its stream."""
        return self.known.issuperset({(s.model, s.model_version) for s in samples})

    def admit(self, record: Sample | Label) -> str:
        """'' if the record may go on (its version perhaps folded), else why not."""
        model = record.model
        if type(record) is Sample and (model, record.model_version) in self.known:
            return ""
        if model not in self.models:
            if type(record) is Label:  # a label takes no slot: its prediction would
                full = len(self.models) >= self.models.limit or len(model) > MAX_NAME
                return TOO_MANY_MODELS if full else ""
            if not self.models.admit(model):
                return TOO_MANY_MODELS
        if type(record) is Sample:
            self._version(record)
        return ""

    def _version(self, sample: Sample) -> None:
        model, version = sample.model, sample.model_version
        versions = self.versions.get(model)
        if versions is None:
            versions = self.versions[model] = Names(self.limits.max_versions)
        if version in versions:
            self.known.add((model, version))
            return
        if self.streams < self.limits.max_streams and versions.admit(version):
            self.streams += 1
            self.known.add((model, version))
            return
        self.folded["model_version"] += 1
        msgspec.structs.force_setattr(sample, "model_version", OTHER)
