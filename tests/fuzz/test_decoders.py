"""Property-based fuzzing of every decoder an untrusted client reaches: records (samples and
labels), batches (JSON arrays, NDJSON, the socket's framing), MQTT payloads.

Bounded in time in `make test` (the default profile); `make fuzz` runs the same properties
far longer (HYPOTHESIS_PROFILE=fuzz, registered in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import msgspec
from hypothesis import example, given, reject
from hypothesis import strategies as st

from agent.model import Label, Sample
from plugins.ingest.config import IngestMqtt
from plugins.ingest.decode import (
    decode,
    decode_body,
    decode_features,
    decode_many,
    decode_ndjson,
    feature_values,
)
from plugins.ingest.mqtt import IngestSubscriber
from plugins.ingest.socket import Lines
from plugins.ingest.tally import Tally

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63) |
           st.floats() | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) |
                      st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
fields = st.sampled_from(["model", "model_version", "request_id", "ts", "features",
                          "prediction", "scores", "score", "group", "label"])
# Records near the schema: every field, with any value, a usable one often enough.
records = st.dictionaries(fields, values, max_size=8) | st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=5), "request_id": st.text(min_size=1, max_size=5) |
     st.integers()}, optional={"prediction": values, "label": values, "features": values,
                               "score": values, "scores": values, "ts": values})


def _line(record: Any) -> bytes:
    return json.dumps(record, allow_nan=True).encode()


lines = st.lists(records.map(_line) | st.binary(max_size=40) |
                 st.sampled_from([b"hello", b"[]", b"{}", b"null", b'"x"', b"\xff\xfe",
                                  b"[" * 5000, b'{"model": "m"', b"NaN"]), max_size=8)


def _verdict(decoded: tuple[Sample | Label | None, str]) -> tuple[str, str, str]:
    record, reason = decoded
    if record is None:
        return ("", "", reason)
    return (type(record).__name__, f"{record.model}/{record.request_id}", reason)


def _well_formed(decoded: tuple[Sample | Label | None, str]) -> None:
    record, reason = decoded
    assert (record is None) == bool(reason)
    assert isinstance(reason, str)
    if record is not None:
        assert type(record) in (Sample, Label)
        assert isinstance(record.model, str)
        assert record.model
        assert isinstance(record.request_id, str)
        assert record.request_id


@given(st.binary(max_size=400) | records.map(_line))
@example(b'{"model": "m", "request_id": 1, "prediction": 1, "features": {"a": 1e999}}')
def test_one_line_gets_a_record_or_a_reason(line: bytes) -> None:
    decoded = decode(line)
    _well_formed(decoded)
    if isinstance(decoded[0], Sample):
        features = feature_values(decoded[0])
        assert isinstance(features, dict)


@given(lines)
def test_the_batch_path_agrees_with_the_line_path(batch: list[bytes]) -> None:
    """Many lines in one msgspec call when clean, line by line otherwise: same verdicts."""
    clean = [line for line in batch if line.strip()]
    one_by_one = [decode(line) for line in clean]
    for decoded in one_by_one:
        _well_formed(decoded)
    assert list(map(_verdict, decode_many(clean))) == list(map(_verdict, one_by_one))


@given(lines)
def test_ndjson_agrees_with_the_line_path(batch: list[bytes]) -> None:
    body = b"\n".join(line for line in batch if b"\n" not in line)
    expected = [decode(line) for line in body.split(b"\n") if line.strip()]
    assert list(map(_verdict, decode_ndjson(body))) == list(map(_verdict, expected))


@given(st.lists(records, max_size=8))
def test_a_json_array_agrees_with_its_elements(batch: list[Any]) -> None:
    """A valid JSON array; one that is not JSON (NaN tokens) is refused whole, as a 400."""
    try:
        body = json.dumps(batch, allow_nan=False).encode()
    except ValueError:
        reject()
    expected = [decode(_line(record)) for record in batch]
    assert list(map(_verdict, decode_body(body))) == list(map(_verdict, expected))


@given(st.binary(max_size=600) | lines.map(b"\n".join) |
       st.lists(records, max_size=5).map(lambda rs: json.dumps(rs).encode()))
def test_any_body_decodes_or_is_refused_as_a_whole(body: bytes) -> None:
    try:
        decoded = decode_body(body)
    except ValueError as exc:
        message = str(exc)
        decoded = []
    else:
        message = "ok"
    assert message  # a refusal says why
    for item in decoded:
        _well_formed(item)


@given(st.binary(max_size=200) | values.map(lambda v: json.dumps(v, allow_nan=True).encode()))
def test_features_of_any_shape_decode_to_a_dict(raw: bytes) -> None:
    features = decode_features(msgspec.Raw(raw))
    assert isinstance(features, dict)
    assert all(isinstance(name, str) for name in features)


def _counts(tally: Tally) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int]]:
    return dict(tally.received), dict(tally.labels), dict(tally.rejected)


@given(lines, st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       st.integers(min_value=8, max_value=200))
def test_the_sockets_framing_does_not_depend_on_chunking(batch: list[bytes], cuts: list[int],
                                                          limit: int) -> None:
    """A stream read in any chunks counts exactly as the same stream read at once."""
    stream = b"\n".join(batch) + b"\n"
    whole, chunked = Tally(100), Tally(100)
    reader = Lines(limit, whole)
    reader.feed(stream)
    reader.close()
    reader = Lines(limit, chunked)
    edges = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(edges):
        reader.feed(stream[start:end])
    reader.close()
    assert _counts(chunked) == _counts(whole)
    assert whole.bytes == chunked.bytes == len(stream)


@given(st.binary(max_size=600) | lines.map(b"\n".join) |
       st.lists(records, max_size=5).map(lambda rs: json.dumps(rs).encode()))
def test_any_mqtt_payload_is_counted_never_raised(payload: bytes) -> None:
    tally = Tally(100)
    subscriber = IngestSubscriber(IngestMqtt(max_payload_bytes=1024), tally, "host")
    asyncio.run(subscriber._accept(payload))  # a coroutine: big payloads go in slices
    counted = sum(tally.received.values()) + sum(tally.labels.values()) + \
        sum(tally.rejected.values())
    try:
        expected = len(decode_body(payload)) if len(payload) <= 1024 else 1
    except ValueError:
        expected = 1  # the whole payload, refused as invalid_json
    assert counted == expected
    assert tally.bytes == len(payload)
