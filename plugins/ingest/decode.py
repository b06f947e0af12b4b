"""One JSON line into a typed Sample or Label, or the reason it cannot be used.

Structurally unusable records are rejected with a reason; nothing here raises on input.
Feature-level problems (missing, null, out of range) are data quality, judged later, and do
not reject a record.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agent.model import Label, Sample

UNSET: Any = msgspec.UNSET


class Raw(msgspec.Struct, kw_only=True):
    model: str | None = None
    model_version: str = ""
    request_id: str | int | None = None
    ts: float | str | None = None
    features: dict[str, Any] | None = None
    prediction: Any = UNSET
    scores: dict[str, float] | None = None
    score: float | None = None
    group: str | None = None
    label: Any = UNSET


_decoder = msgspec.json.Decoder(Raw)
_batch_decoder = msgspec.json.Decoder(list[Raw])
Decoded = tuple[Sample | Label | None, str]  # (record, "") or (None, reason)


def decode_many(lines: list[bytes]) -> list[Decoded]:
    """Many lines in one msgspec call (most batches are clean); line by line if one is not."""
    try:
        raws = _batch_decoder.decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return [decode(line) for line in lines]
    return [_typed(raw) for raw in raws]


def decode(line: bytes) -> Decoded:
    try:
        raw = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        return None, "not_an_object" if "Expected `object`" in str(exc) else "invalid_field"
    except msgspec.DecodeError:
        return None, "invalid_json"
    except UnicodeDecodeError:
        return None, "invalid_utf8"
    except RecursionError:
        return None, "too_deep"
    return _typed(raw)


def _typed(raw: Raw) -> Decoded:
    if not raw.model:
        return None, "no_model"
    if raw.request_id is None or raw.request_id == "":
        return None, "no_request_id"
    ts = None if raw.ts is None else str(raw.ts)
    if raw.prediction is UNSET:
        if raw.label is UNSET:
            return None, "no_prediction"
        return Label(model=raw.model, request_id=str(raw.request_id), label=raw.label,
                     ts=ts), ""
    return Sample(model=raw.model, model_version=raw.model_version,
                  request_id=str(raw.request_id), prediction=raw.prediction, ts=ts,
                  features=raw.features or {}, scores=raw.scores, score=raw.score,
                  group=raw.group), ""

