"""One JSON line into a typed Sample or Label, or the reason it cannot be used.

Structurally unusable records are rejected with a reason; nothing here raises on input.
Feature-level problems (missing, null, out of range) are data quality, judged later, and do
not reject a record.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agent.model import NO_FEATURES, Label, Sample

UNSET: Any = msgspec.UNSET
INT64, UINT64 = -(1 << 63), 1 << 64  # what msgpack (the label store's format) can hold
NESTED_LIMIT = 4096
# What a prediction or a label may be. null, a list or an object would become a class named
# "None" or "[1, 2]" and count in every metric as a wrong answer.
SCALARS = frozenset({str, int, float, bool})


class Raw(msgspec.Struct, kw_only=True, gc=False):
    model: str | None = None
    model_version: str = ""
    request_id: str | int | None = None
    ts: float | str | None = None
    # Decoded on its own: one odd value must not cost the record its prediction.
    features: msgspec.Raw = NO_FEATURES
    prediction: Any = UNSET
    scores: dict[str, float] | None = None
    score: float | None = None
    group: str | None = None
    label: Any = UNSET


_decoder = msgspec.json.Decoder(Raw)
_samples = msgspec.json.Decoder(Sample)  # clean lines decode straight to samples
NULL = msgspec.Raw(b"null")
_batch_decoder = msgspec.json.Decoder(list[Raw])
_features = msgspec.json.Decoder(dict[str, Any])
_raw_features = msgspec.json.Decoder(dict[str, msgspec.Raw])
_value = msgspec.json.Decoder()
Decoded = tuple[Sample | Label | None, str]  # (record, "") or (None, reason)


def decode_many(lines: list[bytes]) -> list[Decoded]:
    """Many lines in one msgspec call (most batches are clean); line by line if one is not."""
    try:
        raws = _batch_decoder.decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return [decode(line) for line in lines]
    return [_typed(raw) for raw in raws]


def decode_ndjson(data: bytes, start: int = 0, end: int | None = None) -> list[Decoded]:
    """The lines of `data[start:end]` in one msgspec call when clean (the socket's usual case),
    without copying the slice.

    Blank or broken lines, or a line holding two records, take the line-by-line path, so
    each record's verdict is the same either way.
    """
    end = len(data) if end is None else end
    try:
        records = _samples.decode_lines(memoryview(data)[start:end])
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        records = None
    if records is None or len(records) != data.count(b"\n", start, end) + 1:
        return [decode(line) for line in data[start:end].split(b"\n") if line.strip()]
    return [(r, "") if type(r.prediction) in SCALARS and r.model and r.request_id else _odd(r)
            for r in records]


def _odd(record: Sample) -> Decoded:
    """A line that decoded as a Sample but is a label, or lacks what every record needs."""
    return _not_a_sample(record, record.request_id) or (record, "")


def decode_body(body: bytes) -> list[Decoded]:
    """An HTTP or MQTT body: a JSON array of records or NDJSON; ValueError if neither."""
    if body.lstrip()[:1] == b"[":
        try:
            return [_typed(raw) for raw in _batch_decoder.decode(body)]
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return decode_many(split_records(body))
    data = body.strip()
    return decode_ndjson(data) if data else []


def decode(line: bytes) -> Decoded:
    try:
        raw = _decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return None, failure_reason(line, exc)
    return _typed(raw)


def failure_reason(line: bytes, exc: Exception) -> str:
    """Why a line failed, judged from its bytes and the exception's type, never its text:
    msgspec's wording and exception types change between releases (0.23 calls invalid
    UTF-8 a JSON syntax error; earlier ones raised UnicodeDecodeError).

    `invalid_utf8` is a line that would be JSON but for its encoding (bad bytes inside a
    string); bytes that are not JSON anyway are `invalid_json`.
    """
    if isinstance(exc, RecursionError):
        return "too_deep"
    try:
        line.decode("utf-8")  # only on the failure path: clean lines never pay for it
    except UnicodeDecodeError:
        return "invalid_utf8" if _json_once_mended(line) else "invalid_json"
    if isinstance(exc, msgspec.ValidationError):
        return "invalid_field" if line.lstrip()[:1] == b"{" else "not_an_object"
    return "invalid_json"


def _json_once_mended(line: bytes) -> bool:
    try:
        _value.decode(line.decode("utf-8", "replace").encode())
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _typed(raw: Raw) -> Decoded:
    rid = raw.request_id
    rid = "" if rid is None else rid if type(rid) is str else str(rid)
    verdict = _not_a_sample(raw, rid)
    if verdict is not None:
        return verdict
    assert raw.model  # noqa: S101 - checked by _not_a_sample; for the type checker
    return Sample(model=raw.model, model_version=raw.model_version,
                  request_id=rid, prediction=raw.prediction, ts=raw.ts,
                  features_json=raw.features, scores=raw.scores, score=raw.score,
                  group=raw.group), ""


def _not_a_sample(record: Raw | Sample, rid: str) -> Decoded | None:
    """The verdict on a record that is not a usable prediction (a label, or a reason it
    cannot be used); None for one that is. The one rule for both decoding paths."""
    if not record.model:
        return None, "no_model"
    if not rid:
        return None, "no_request_id"
    if record.prediction is UNSET:
        if record.label is UNSET:
            return None, "no_prediction"
        if type(record.label) not in SCALARS:
            return None, "invalid_field"
        return Label(model=record.model, request_id=rid, label=record.label, ts=record.ts), ""
    return None if type(record.prediction) in SCALARS else (None, "invalid_field")


def decode_features(raw: msgspec.Raw) -> dict[str, Any]:
    """Features as decoded values; numbers too large for msgspec become floats (maybe inf).

    A non-object `features` becomes `{}`: the record's prediction still counts, and the
    missing features show up as data quality, not as a rejection.
    """
    if raw == NULL or not raw:
        return {}
    try:
        return _features.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        values = _raw_features.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return {}
    out: dict[str, Any] = {}
    for name, value in values.items():
        try:
            decoded = _value.decode(value)
        except (msgspec.DecodeError, RecursionError):
            decoded = None
        if decoded is None or (isinstance(decoded, int) and not INT64 <= decoded < UINT64):
            decoded = _huge(bytes(value))
        if isinstance(decoded, list | dict) and len(value) > NESTED_LIMIT:
            decoded = None  # a big nested value only a model could love: not a feature
        out[name] = decoded
    return out


def _huge(text: bytes) -> float | None:
    """An integer or float beyond 64 bits/double range: keep it as a float (inf if need be)."""
    if text.startswith(b'"') or len(text) > NESTED_LIMIT:
        return None
    try:
        return float(text)
    except ValueError:
        return None


_array = msgspec.json.Decoder(list[msgspec.Raw])


def split_records(body: bytes) -> list[bytes]:
    """A JSON array of records, or one record per line (NDJSON); ValueError if neither."""
    if body.lstrip()[:1] == b"[":
        try:
            return [bytes(raw) for raw in _array.decode(body)]
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"invalid JSON array: {exc}") from None
    return [line for line in body.split(b"\n") if line.strip()]


def feature_values(sample: Sample) -> dict[str, Any]:
    """A sample's features, decoded now if they came as raw JSON."""
    if not sample.features_json:
        return sample.features
    return decode_features(sample.features_json)
