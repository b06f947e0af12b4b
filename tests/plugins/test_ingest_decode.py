"""The ingestion decoder: every malformed record gets a reason, nothing raises."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.model import NO_FEATURES, Label, Sample
from plugins.ingest.decode import (
    decode,
    decode_body,
    decode_many,
    decode_ndjson,
    failure_reason,
    feature_values,
    split_records,
)
from plugins.ingest.socket import Lines, _lines_within
from plugins.ingest.tally import Tally

REASONS = {"invalid_json", "not_an_object", "invalid_field", "no_model", "no_request_id",
           "no_prediction", "too_deep", "invalid_utf8"}


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    record, reason = decode(data)
    assert (record is None) == (reason in REASONS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.sampled_from(["model", "request_id", "prediction", "label",
                                        "scores", "score", "features", "ts", "group"]),
                       json_values))
def test_arbitrary_objects_never_raise(obj: dict[str, object]) -> None:
    record, reason = decode(json.dumps(obj).encode())
    if record is None:
        assert reason in REASONS
    else:
        assert isinstance(record, Sample | Label)
        assert record.model
        assert record.request_id


@pytest.mark.parametrize("value", [b"null", b"[1, 2]", b'{"a": 1}', b"[]"])
@pytest.mark.parametrize("key", [b"prediction", b"label"])
def test_a_prediction_or_label_that_is_no_single_value_is_refused(key: bytes,
                                                                  value: bytes) -> None:
    """null, a list or an object would become a class named "None" or "[1, 2]", counted as
    a wrong answer in every metric: refused on every decoding path, socket's fast one too."""
    line = b'{"model": "m", "request_id": "r", "' + key + b'": ' + value + b"}"
    expected = [(None, "invalid_field")]
    assert [decode(line)] == expected
    assert decode_many([line]) == expected
    assert decode_ndjson(line) == expected
    assert decode_body(b"[" + line + b"]") == expected



@pytest.mark.parametrize(("line", "reason"), [
    (b'{"model": "m", "request_id": "r", "prediction": 1', "invalid_json"),  # truncated
    (b'{"model": "m\xff\xfe", "request_id": "r", "prediction": 1}', "invalid_utf8"),
    (b'{"model": "m", "request_id": "r", "prediction": 1, "score": NaN}', "invalid_json"),
    (b'[1, 2, 3]', "not_an_object"),
    (b'{"model": 5, "request_id": "r", "prediction": 1}', "invalid_field"),
    (b'{"model": "m", "request_id": "r", "prediction": 1, "scores": {"a": "x"}}',
     "invalid_field"),
    (b'{"request_id": "r", "prediction": 1}', "no_model"),
    (b'{"model": "m", "prediction": 1}', "no_request_id"),
    (b'{"model": "m", "request_id": "r"}', "no_prediction"),
    (b'{"model": "m", "request_id": "r", "prediction": 1, "score": 1e999}', "invalid_field"),
    (b'{"model": "m", "request_id": "r", "prediction": ' + b"[" * 100_000 + b"]" * 100_000
     + b"}", None),
])
def test_malformed_corpus(line: bytes, reason: str | None) -> None:
    record, why = decode(line)
    assert record is None
    assert why == reason if reason else why in REASONS


_TEXT_FIELDS = st.sampled_from(["model", "request_id", "model_version", "group"])
_BAD_UTF8 = st.sampled_from([b"\xff", b"\xfe", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80",
                             b"\xf8\x88\x80\x80\x80", b"\x80"])


@given(_TEXT_FIELDS, st.text(max_size=8), _BAD_UTF8, st.text(max_size=8))
def test_invalid_utf8_in_a_read_field_is_invalid_utf8(field: str, before: str, bad: bytes,
                                                      after: str) -> None:
    """Whatever msgspec calls it (0.23: a JSON syntax error; before: UnicodeDecodeError)."""
    record = {"model": "m", "request_id": "r", "prediction": 1, field: "\0"}
    line = json.dumps(record).encode().replace(
        b'"\\u0000"', b'"' + json.dumps(before)[1:-1].encode() + bad
        + json.dumps(after)[1:-1].encode() + b'"')
    assert decode(line) == (None, "invalid_utf8")
    assert decode_many([line]) == [(None, "invalid_utf8")]
    assert decode_ndjson(line) == [(None, "invalid_utf8")]


@pytest.mark.parametrize("exc", [
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),  # msgspec < 0.23
    msgspec.DecodeError("JSON is malformed: invalid character (byte 12)"),  # msgspec 0.23
    msgspec.DecodeError("Invalid UTF-8 encoded string"),
    msgspec.ValidationError("Expected `object`, got `array`"),
    msgspec.ValidationError("some wording a future release picks"),
])
def test_the_reason_does_not_depend_on_the_libraries_words(exc: Exception) -> None:
    bad = b'{"model": "m\xff", "request_id": "r", "prediction": 1}'
    assert failure_reason(bad, exc) == "invalid_utf8"
    assert failure_reason(b"\xff not json", exc) == "invalid_json"  # not JSON either way
    assert failure_reason(b'{"model": "m\xff"', exc) == "invalid_json"  # truncated too
    if isinstance(exc, msgspec.ValidationError):
        assert failure_reason(b" [1, 2]", exc) == "not_an_object"
        assert failure_reason(b'"text"', exc) == "not_an_object"
        assert failure_reason(b'{"model": 5}', exc) == "invalid_field"
    else:
        assert failure_reason(b'{"model": "m"', exc) == "invalid_json"


@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_any_json_but_an_object_is_not_an_object(value: object) -> None:
    assert decode(json.dumps(value).encode()) == (None, "not_an_object")


def test_sample_and_label() -> None:
    sample, _ = decode(b'{"model": "fraud", "model_version": "3", "request_id": 17, '
                       b'"features": {"amount": 12.5, "country": null}, "prediction": 1, '
                       b'"scores": {"0": 0.2, "1": 0.8}, "group": "g", "ts": 1.5}')
    assert isinstance(sample, Sample)
    assert feature_values(sample) == {"amount": 12.5, "country": None}
    assert msgspec.structs.replace(sample, features_json=NO_FEATURES) == Sample(
        model="fraud", model_version="3", request_id="17", prediction=1,
        scores={"0": 0.2, "1": 0.8}, group="g", ts=1.5)


def test_odd_feature_values_do_not_cost_the_record() -> None:
    sample, reason = decode(b'{"model": "m", "request_id": 1, "prediction": 1, "features": '
                            b'{"a": 1e400, "b": 100000000000000000000000000000000000, '
                            b'"c": [1, 2], "d": "x"}}')
    assert reason == ""
    assert isinstance(sample, Sample)
    assert feature_values(sample) == {"a": float("inf"), "b": 1e35, "c": [1, 2], "d": "x"}
    sample, _ = decode(b'{"model": "m", "request_id": 1, "prediction": 1, "features": [1]}')
    assert isinstance(sample, Sample)
    assert feature_values(sample) == {}
    label, _ = decode(b'{"model": "fraud", "request_id": "17", "label": 0}')
    assert label == Label(model="fraud", request_id="17", label=0)


record_lines = st.lists(
    st.sampled_from([b'{"model": "m", "request_id": "a", "prediction": 1}',
                     b'{"model": "m", "request_id": 7, "label": 0}',
                     b'{"model": "m", "request_id": "b", "prediction": 1}, {"model": "m"}',
                     b'{"model": "m"}', b'{"request_id": "c", "prediction": 0}', b"[1]",
                     b"", b"  ", b'{"model": "m", "request_id": "d"', b"\xff\xfe", b"null"])
    | st.binary(max_size=40), max_size=12)


@given(record_lines)
def test_a_whole_chunk_gets_the_verdicts_its_lines_would(lines: list[bytes]) -> None:
    """The socket's one-call path must never accept what the line-by-line path refuses."""
    joined = b"\n".join(lines)
    if not joined.strip():
        return
    expected = [decode(line) for line in joined.split(b"\n") if line.strip()]
    assert decode_ndjson(joined) == expected


@given(record_lines)
def test_an_http_body_is_an_array_or_ndjson(lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    try:
        array = decode_body(b"[" + b",".join(line for line in lines if line.strip()) + b"]")
    except ValueError:
        return  # not a JSON array: refused whole, as split_records does
    assert array == decode_many(split_records(
        b"[" + b",".join(line for line in lines if line.strip()) + b"]"))
    if body.strip() and not body.lstrip().startswith(b"["):  # NDJSON
        assert decode_body(body) == [decode(line) for line in body.split(b"\n") if line.strip()]


@given(st.lists(st.integers(0, 60), max_size=30), st.integers(1, 50))
def test_the_line_length_check_skips_ahead_but_misses_no_long_line(lengths: list[int],
                                                                      limit: int) -> None:
    data = b"\n".join(b"x" * n for n in lengths)
    assert _lines_within(data, limit) == all(n <= limit for n in lengths)


@given(st.lists(st.sampled_from([b'{"model": "m", "request_id": "a", "prediction": 1}',
                                 b'{"model": "m", "request_id": 7, "label": 0}',
                                 b'{"model": "m", "request_id": "' + b"z" * 1100 + b'", '
                                 b'"prediction": 1}', b"", b"{oops", b"  "]), max_size=30),
       st.lists(st.integers(0, 40_000), max_size=8), st.booleans())
def test_the_socket_counts_the_same_however_the_stream_is_cut(
        lines: list[bytes], cuts: list[int], newline_at_end: bool) -> None:
    limit = 1024
    data = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    tally = Tally(10)
    stream = Lines(limit, tally)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(points):
        stream.feed(data[a:b])
    stream.close()
    expected: Counter[str] = Counter()
    for line in data.split(b"\n"):
        if len(line) > limit:
            expected["too_large"] += 1
        elif line.strip():
            record, why = decode(line)
            expected[why or type(record).__name__] += 1
    got = Counter({why: n for (_, why), n in tally.rejected.items()})
    got.update({"Sample": tally.received.total(), "Label": tally.labels.total()})
    assert +got == +expected
