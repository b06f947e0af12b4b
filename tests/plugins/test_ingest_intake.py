"""PluginContext.submit() into the ingest plugin: the socket's verdicts and counts, exactly."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given

from agent.intake import SampleIntake, Submitted
from agent.model import Label, Sample
from agent.testing import fake_context, running
from plugins.ingest.bounds import Limits
from plugins.ingest.intake import SubmitReceiver
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.socket import Lines
from plugins.ingest.tally import Tally
from plugins.ingest.windows import WindowStage
from tests.fuzz.test_decoders import lines as fuzzed_lines

LIMIT = 200


def _tally() -> tuple[Tally, list[Sample | Label]]:
    windows = WindowStage({}, ["1000n"], label_wait=0, limits=Limits(max_models=3))
    joined: list[Sample | Label] = []
    tally = Tally(3)
    tally.pipeline = Pipeline({}, windows, joined.extend)
    return tally, joined


def _state(tally: Tally, joined: list[Sample | Label]) -> tuple[Any, ...]:
    assert tally.pipeline is not None
    return (dict(tally.received), dict(tally.labels), dict(tally.rejected), tally.bytes,
            joined, dict(tally.pipeline.kept), sorted(tally.pipeline.windows.streams))


@given(fuzzed_lines)
def test_submitted_lines_are_judged_and_counted_as_the_socket_does(batch: list[bytes]) -> None:
    stream = b"\n".join(batch) + b"\n"
    socket_tally, socket_joined = _tally()
    reader = Lines(LIMIT, socket_tally)
    reader.feed(stream)
    reader.close()
    tally, joined = _tally()
    receiver = SubmitReceiver(fake_context("ingest"), tally, LIMIT)
    records = [line for line in stream.split(b"\n") if line.strip()]
    verdicts = receiver.receive(records)
    tally.bytes = socket_tally.bytes  # the socket also counts newlines and blank lines
    assert _state(tally, joined) == _state(socket_tally, socket_joined)
    assert len(verdicts) == len(records)


def test_dicts_str_and_bytes_are_one_record_each_with_a_verdict_each() -> None:
    tally, joined = _tally()
    receiver = SubmitReceiver(fake_context("ingest"), tally, LIMIT)
    sample = {"model": "m", "request_id": "r1", "prediction": 1, "features": {"x": 1.5}}
    verdicts = receiver.receive([
        sample, json.dumps({"model": "m", "request_id": "r1", "label": 1}),
        b'{"model": "m"}', b"not json", b"   ", {"model": "m", "prediction": object()},
        b'{"model": "m", "request_id": "r2", "prediction": 0,\n "features": {}}',
        b'{"model": "m", "request_id": "big", "prediction": 0, "pad": "' + b"x" * LIMIT + b'"}',
        42,  # type: ignore[list-item]
    ])
    assert verdicts == ["", "", "no_request_id", "invalid_json", "blank", "invalid_field", "",
                        "too_large", "not_an_object"]
    assert dict(tally.received) == {"m": 2}
    assert dict(tally.labels) == {"m": 1}
    assert dict(tally.rejected) == {("", "no_request_id"): 1, ("", "invalid_json"): 1,
                                    ("", "invalid_field"): 1, ("", "too_large"): 1,
                                    ("", "not_an_object"): 1}
    assert [type(r).__name__ for r in joined] == ["Sample", "Sample", "Label"]


def test_models_beyond_the_bound_are_refused_with_their_reason() -> None:
    tally, _ = _tally()
    receiver = SubmitReceiver(fake_context("ingest"), tally, LIMIT)
    verdicts = receiver.receive([{"model": f"m{i}", "request_id": "r", "prediction": 1}
                                 for i in range(5)])
    assert verdicts == ["", "", "", "too_many_models", "too_many_models"]


async def test_a_plugin_submits_through_its_context_once_ingest_has_started() -> None:
    tally, joined = _tally()
    intake = SampleIntake()  # one per agent, shared by every plugin's context
    ingest_ctx = fake_context("ingest", intake=intake)
    source = fake_context("files", intake=intake)
    assert source.submit([b"{}"]).refused == "no_receiver"
    async with running(SubmitReceiver(ingest_ctx, tally, LIMIT)):
        result = source.submit([{"model": "m", "request_id": "r", "prediction": 1}, b"{}"])
    assert result == Submitted(1, 1, {"no_model": 1})
    assert [r.request_id for r in joined] == ["r"]
    assert source.submit([b"{}"]).refused == "no_receiver"  # detached on stop
    assert source.intake.counts[("files", "refused:no_receiver")] == 2
