"""A body decoded and counted in slices gives every line the verdict it gets in one go."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.ingest import slices
from plugins.ingest.decode import decode_body
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.tally import Tally
from plugins.ingest.windows import WindowStage

LINES = [b'{"model": "m", "request_id": "r%d", "prediction": 1}',
         b'{"model": "m", "request_id": "r%d", "label": 0}',
         b'{"model": "m", "request_id": "r%d"', b"[%d]", b"", b"   ",
         b'{"model": "m", "prediction": %d}']


@given(st.lists(st.sampled_from(LINES), max_size=60))
def test_slices_decode_as_the_whole_body_does(picked: list[bytes]) -> None:
    body = b"\n".join(line % i if b"%d" in line else line for i, line in enumerate(picked))
    try:
        whole = decode_body(body)
    except ValueError:
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slices, "SLICE_BYTES", 64)
        assert asyncio.run(slices.decode_in_slices(body)) == whole


def test_counting_in_slices_keeps_the_order_of_reasons() -> None:
    tally = Tally(10)
    tally.pipeline = Pipeline({}, WindowStage({}, ["1h"]), lambda _: None)
    body = b"\n".join(b'{"model": "m", "request_id": "r%d", "prediction": 1}' % i
                      if i % 3 else b'{"model": "m"}' for i in range(12_000))
    reasons = asyncio.run(slices.count_in_slices(tally, decode_body(body)))
    assert reasons == ["no_request_id" if i % 3 == 0 else "" for i in range(12_000)]
    assert tally.received["m"] == 8000
