"""The ndjson_file tailer: whole lines once each, across restarts, rotation and truncation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.intake import NO_RECEIVER, Record, Submitted
from agent.testing import fake_context
from plugins.ndjson_file.offsets import Offsets
from plugins.ndjson_file.tail import Settings, Tailer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Ingest:
    """A receiver that takes JSON objects and rejects anything else, or refuses everything."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.refusing = ""

    def __call__(self, lines: list[bytes]) -> Submitted:
        if self.refusing:
            return Submitted.refusal(self.refusing, len(lines))
        verdicts = []
        for line in lines:
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            verdicts.append("" if ok else "invalid_json")
            if ok:
                self.lines.append(line)
        return Submitted.judged(verdicts)

    @property
    def ids(self) -> list[int]:
        return [json.loads(line)["i"] for line in self.lines]


def _tailer(tmp_path: Path, ingest: Ingest, patterns: Sequence[str] = ("*.ndjson",),
            clock: Clock | None = None, **options: object) -> Tailer:
    tailer = Tailer([str(tmp_path / p) for p in patterns], ingest,
                    Offsets(tmp_path / "offsets.json"), Settings(**options),  # type: ignore[arg-type]
                    clock=clock or Clock())
    tailer.open()
    return tailer


def _lines(*ids: int) -> bytes:
    return b"".join(b'{"i": %d}\n' % i for i in ids)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def test_whole_lines_go_once_and_a_partial_last_line_waits_for_its_newline(
        tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1, 2) + b'{"i": 3')
    tailer = _tailer(tmp_path, ingest)
    assert tailer.poll() == ""
    assert ingest.ids == [1, 2]
    tailer.poll()
    assert ingest.ids == [1, 2]
    _append(file, b"}\n" + _lines(4))
    tailer.poll()
    assert ingest.ids == [1, 2, 3, 4]


def test_a_restart_resumes_at_the_saved_offset(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1, 2))
    first = _tailer(tmp_path, ingest)
    first.poll()
    first.close()
    _append(file, _lines(3))
    _tailer(tmp_path, ingest).poll()
    assert ingest.ids == [1, 2, 3]


def test_rotation_by_rename_reads_the_old_files_end_then_the_new_file(tmp_path: Path) -> None:
    ingest, clock, file = Ingest(), Clock(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1))
    tailer = _tailer(tmp_path, ingest, clock=clock, rotate_wait=5.0)
    tailer.poll()
    _append(file, _lines(2))
    file.rename(tmp_path / "a.ndjson.1")  # not matched by the glob any more
    file.write_bytes(_lines(10))
    tailer.poll()
    assert ingest.ids == [1, 2, 10]
    assert tailer.stats.events["rotated"] == 1
    _append(tmp_path / "a.ndjson.1", _lines(3))  # the writer had not reopened yet
    clock.now = 5.0
    tailer.poll()
    assert ingest.ids == [1, 2, 10, 3]
    assert len(tailer.files) == 1  # the rotated file, read to its end, is let go
    tailer.close()
    _append(file, _lines(11))
    _tailer(tmp_path, ingest).poll()
    assert ingest.ids == [1, 2, 10, 3, 11]


def test_a_rotated_file_that_still_matches_keeps_its_place(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1))
    tailer = _tailer(tmp_path, ingest, patterns=["a.ndjson*"])
    tailer.poll()
    tailer.close()
    file.rename(tmp_path / "a.ndjson.1")
    _append(tmp_path / "a.ndjson.1", _lines(2))
    file.write_bytes(_lines(3))
    _tailer(tmp_path, ingest, patterns=["a.ndjson*"]).poll()
    assert sorted(ingest.ids) == [1, 2, 3]


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1, 2, 3))
    tailer = _tailer(tmp_path, ingest)
    tailer.poll()
    file.write_bytes(_lines(4))  # copytruncate, then one new line
    tailer.poll()
    assert ingest.ids == [1, 2, 3, 4]
    assert tailer.stats.events["truncated"] == 1


def test_a_refused_batch_stays_in_the_file_until_ingestion_takes_it(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1, 2))
    ingest.refusing = NO_RECEIVER
    tailer = _tailer(tmp_path, ingest)
    assert tailer.poll() == NO_RECEIVER
    assert tailer.stats.refused[NO_RECEIVER] == 1
    tailer.close()
    ingest.refusing = ""
    _tailer(tmp_path, ingest).poll()
    assert ingest.ids == [1, 2]


def test_malformed_and_oversized_lines_are_counted_with_a_reason(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    big = b'{"i": 9, "pad": "' + b"x" * (2 << 20) + b'"}\n'  # beyond a chunk and the limit
    file.write_bytes(_lines(1) + b"not json\n\n" + big + b'{"pad": "' + b"y" * 2000 + b'"}\n'
                     + _lines(2))
    tailer = _tailer(tmp_path, ingest, max_line_bytes=1024)
    tailer.poll()
    assert ingest.ids == [1, 2]
    assert dict(tailer.stats.rejected) == {"invalid_json": 1, "too_large": 2}
    assert dict(tailer.stats.records) == {"accepted": 2, "rejected": 3}


def test_a_line_longer_than_a_read_but_within_the_limit_is_taken_whole(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    long = b'{"i": 7, "pad": "' + b"x" * (3 << 19) + b'"}\n'  # 1.5 MiB
    file.write_bytes(_lines(1) + long + _lines(2))
    _tailer(tmp_path, ingest, max_line_bytes=2 << 20).poll()
    assert ingest.ids == [1, 7, 2]


def test_a_long_line_still_being_written_is_skipped_to_its_newline_across_a_restart(
        tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(b'{"pad": "' + b"x" * 3000)
    first = _tailer(tmp_path, ingest, max_line_bytes=1024)
    first.poll()
    first.close()
    _append(file, b"x" * 100 + b'"}\n' + _lines(1))
    second = _tailer(tmp_path, ingest, max_line_bytes=1024)
    second.poll()
    assert ingest.ids == [1]
    assert second.stats.rejected["too_large"] == 1


def test_start_at_end_skips_what_was_there_on_the_first_start_only(tmp_path: Path) -> None:
    ingest, file = Ingest(), tmp_path / "a.ndjson"
    file.write_bytes(_lines(1))
    tailer = _tailer(tmp_path, ingest, start_at_end=True)
    tailer.poll()
    _append(file, _lines(2))
    (tmp_path / "b.ndjson").write_bytes(_lines(3))  # new since: read from its start
    tailer.poll()
    assert sorted(ingest.ids) == [2, 3]


def test_a_damaged_offsets_file_means_starting_afresh_not_failing(tmp_path: Path) -> None:
    ingest = Ingest()
    (tmp_path / "a.ndjson").write_bytes(_lines(1))
    (tmp_path / "offsets.json").write_bytes(b'{"files": [{"dev": "x"')
    _tailer(tmp_path, ingest).poll()
    assert ingest.ids == [1]


def test_batches_are_bounded(tmp_path: Path) -> None:
    sizes: list[int] = []
    ingest = Ingest()

    def submit(lines: list[bytes]) -> Submitted:
        sizes.append(len(lines))
        return ingest(lines)

    (tmp_path / "a.ndjson").write_bytes(_lines(*range(25)))
    tailer = Tailer([str(tmp_path / "*.ndjson")], submit, Offsets(tmp_path / "o.json"),
                    Settings(batch_lines=10))
    tailer.open()
    tailer.poll()
    assert sizes == [10, 10, 5]
    assert ingest.ids == list(range(25))


writes = st.lists(st.tuples(st.integers(min_value=0, max_value=60),
                            st.sampled_from(["poll", "restart", "nothing"])), max_size=12)


@settings(max_examples=60)
@given(writes)
def test_every_line_arrives_exactly_once_whatever_the_cuts_and_restarts(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, str]]) -> None:
    root = tmp_path_factory.mktemp("t")
    stream = _lines(*range(40))
    ingest, file = Ingest(), root / "a.ndjson"
    file.write_bytes(b"")
    tailer, written = _tailer(root, ingest, batch_lines=3), 0
    for size, action in steps:
        _append(file, stream[written:written + size])
        written = min(len(stream), written + size)
        if action == "poll":
            tailer.poll()
        elif action == "restart":
            tailer.close()
            tailer = _tailer(root, ingest, batch_lines=3)
    _append(file, stream[written:])
    tailer.poll()
    assert ingest.ids == list(range(40))


def test_submit_through_a_fake_context_records_the_lines(tmp_path: Path) -> None:
    ctx = fake_context("ndjson_file", state_root=tmp_path)
    (tmp_path / "a.ndjson").write_bytes(_lines(1, 2))
    tailer = Tailer([str(tmp_path / "*.ndjson")], ctx.submit, Offsets(tmp_path / "o.json"),
                    Settings())
    tailer.open()
    tailer.poll()
    submitted: list[Record] = ctx.submitted
    assert submitted == [b'{"i": 1}', b'{"i": 2}']


def test_every_metric_is_in_the_plugins_readme() -> None:
    from agent.metrics import MetricDef  # noqa: PLC0415
    from plugins.ndjson_file import source  # noqa: PLC0415
    from tests.helpers import ROOT  # noqa: PLC0415

    readme = (ROOT / "plugins" / "ndjson_file" / "README.md").read_text()
    names = [d.name for d in vars(source).values() if isinstance(d, MetricDef)]
    assert len(names) == 8
    assert [n for n in names if f"`{n}" not in readme] == []


def test_a_file_named_without_a_wildcard_in_the_config_is_read_once_and_its_offset_saved(
        tmp_path: Path) -> None:
    """A literal path comes back from glob as the config's own `ConfigPath` object; its
    offset must still save (it failed to encode: the tailer restarted and re-read the file
    over and over)."""
    from agent.config import build_config  # noqa: PLC0415
    from plugins.ndjson_file.config import NdjsonFileConfig  # noqa: PLC0415
    config = build_config({"plugins": {"ndjson_file": {"enabled": True, "paths": [
        "labels.ndjson"]}}}, {"ndjson_file": NdjsonFileConfig}, base_dir=tmp_path)
    paths = config.plugins["ndjson_file"].paths  # type: ignore[attr-defined]
    (tmp_path / "labels.ndjson").write_bytes(_lines(1, 2))
    ingest = Ingest()
    tailer = Tailer(paths, ingest, Offsets(tmp_path / "offsets.json"), Settings())
    tailer.open()
    assert tailer.poll() == ""
    assert ingest.ids == [1, 2]
    saved = json.loads((tmp_path / "offsets.json").read_bytes())
    assert [(f["path"], f["offset"]) for f in saved["files"]] == [
        (str(tmp_path / "labels.ndjson"), len(_lines(1, 2)))]
    tailer.close()
    again = Tailer(paths, ingest, Offsets(tmp_path / "offsets.json"), Settings())
    again.open()
    assert again.poll() == ""
    assert ingest.ids == [1, 2]
