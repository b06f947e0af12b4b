"""Frozen, slotted records shared by the core and every plugin (DESIGN.md, "Events", "Samples")."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import os
import time
from typing import Any

import msgspec

EVENT_SCHEMA = 1
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 -> Crockford's alphabet: the C encoder does the bit slicing for us.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def new_ulid(now: float | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, so ids sort by creation time."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    # 160 bits encode to 32 characters; the last 26 are the 130 low bits: the ULID.
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_TO_CROCKFORD).decode()


def utc_timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC with millisecond precision and a `Z` suffix."""
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """The one envelope for everything that happens; consumers dedupe by `id`."""

    kind: str
    source: str
    host: str
    severity: Severity = Severity.INFO
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str = msgspec.field(default_factory=new_ulid)
    ts: str = msgspec.field(default_factory=utc_timestamp)
    schema: int = EVENT_SCHEMA

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)


NO_FEATURES = msgspec.Raw()  # no "features" key (features may then be in `features`)


class Sample(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One model prediction as recorded by a model server, and what one JSON line decodes to
    (a line with `label` and no `prediction` becomes a Label; the ingest decoder checks)."""

    model: str = ""
    request_id: str = ""
    prediction: Any = msgspec.UNSET
    ts: str | float | None = None  # RFC 3339 or Unix seconds, as sent
    model_version: str = ""
    # The features' JSON as received, decoded only if a window keeps the sample (most are
    # not, at high rates); a view into the buffer it came in until then, copied when kept.
    # The ingest plugin's `feature_values()` reads this or `features` (samples made in code).
    features_json: msgspec.Raw = msgspec.field(default=NO_FEATURES, name="features")
    scores: dict[str, float] | None = None
    score: float | None = None
    group: str | None = None
    label: Any = msgspec.UNSET  # only on a label line, before it becomes a Label
    features: dict[str, Any] = msgspec.field(default_factory=dict, name="__features")


class Label(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The ground truth for an earlier (or later) prediction, joined by (model, request_id)."""

    model: str
    request_id: str
    label: Any
    ts: str | float | None = None  # RFC 3339 or Unix seconds, as sent
