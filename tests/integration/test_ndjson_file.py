"""The real agent follows a file of samples and labels, and survives `kill -9` without
losing or repeating a line (the ndjson_file plugin through PluginContext.submit)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import ConfigWriter
from tests.helpers import poll, value

pytestmark = pytest.mark.integration

BATCH = 50


def _samples(start: int, stop: int) -> bytes:
    return b"".join(b'{"model": "m", "request_id": "r%d", "prediction": %d, '
                    b'"features": {"x": %d}}\n' % (i, i % 2, i) for i in range(start, stop))


def _labels(start: int, stop: int) -> bytes:
    return b"".join(b'{"model": "m", "request_id": "r%d", "label": %d}\n' % (i, i % 2)
                    for i in range(start, stop))


def _config(write_config: ConfigWriter, tmp_path: Path) -> tuple[Path, int]:
    return write_config(
        '[plugins.host]\nenabled = false\n'
        f'[plugins.ingest]\nenabled = true\ninterval = "100ms"\n'
        f'socket_path = "{tmp_path / "ingest.sock"}"\nwindows = ["100n"]\nlabel_wait = "1s"\n'
        '[plugins.quality]\nenabled = true\ninterval = "100ms"\n'
        f'[plugins.ndjson_file]\nenabled = true\ninterval = "100ms"\n'
        f'paths = ["{tmp_path / "in"}/*.ndjson"]\nbatch_lines = {BATCH}\n')


def _received(agent) -> float:  # type: ignore[no-untyped-def]
    return value(agent.scrape(), "inferwatch_samples_received_total", model="m") or 0


def _whole_sample_lines(data: bytes) -> int:
    """Sample lines (with their newline) in `data`: what ingestion will count as received."""
    return sum(b'"prediction"' in line for line in data.split(b"\n")[:-1])


def test_samples_and_labels_from_files_become_windows(write_config: ConfigWriter,
                                                      agent_factory, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "samples.ndjson").write_bytes(_samples(0, 200) + b"garbage\n" + b'{"model": 1}\n')
    (folder / "labels.ndjson").write_bytes(_labels(0, 200))
    agent = agent_factory(*_config(write_config, tmp_path))
    window = {"model": "m", "model_version": "", "window": "100n"}
    poll(lambda: value(agent.scrape(), "inferwatch_model_window_labeled_samples", **window)
         == 100, 30, what="a final window of 100 labelled samples from the files")
    # The plugin's own counters come with its next collection, not with the window.
    poll(lambda: value(agent.scrape(), "inferwatch_ndjson_file_rejected_total",
                       reason="invalid_json") == 1, 10, what="the file plugin's counters")
    metrics = agent.scrape()
    assert value(metrics, "inferwatch_samples_received_total", model="m") == 200
    assert value(metrics, "inferwatch_labels_received_total", model="m") == 200
    assert value(metrics, "inferwatch_model_accuracy", **window) == 1.0
    assert value(metrics, "inferwatch_samples_rejected_total", model="",
                 reason="invalid_json") == 1
    assert value(metrics, "inferwatch_ndjson_file_rejected_total", reason="invalid_json") == 1
    assert value(metrics, "inferwatch_ndjson_file_records_total", outcome="accepted") == 400
    assert value(metrics, "inferwatch_plugin_records_submitted_total", plugin="ndjson_file",
                 outcome="rejected") == 2
    assert value(metrics, "inferwatch_ndjson_file_files") == 2


def test_kill_9_and_restart_lose_and_repeat_nothing(write_config: ConfigWriter, agent_factory,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    file = folder / "samples.ndjson"
    file.write_bytes(_samples(0, 300))
    config, port = _config(write_config, tmp_path)
    first = agent_factory(config, port)
    poll(lambda: _received(first) == 300, 30, what="the first 300 samples")
    with file.open("ab") as out:
        out.write(_samples(300, 6300))
    poll(lambda: _received(first) > 300, 30, what="the agent reading the appended lines")
    first.signal(signal.SIGKILL)
    first.proc.wait(10)
    state = json.loads((tmp_path / "state/plugins/ndjson_file/offsets.json").read_bytes())
    committed = state["files"][0]["offset"]
    assert committed >= len(_samples(0, 300))  # the first 300 were committed before the kill
    with file.open("ab") as out:
        out.write(_samples(6300, 6400) + b'{"model": "m", "request_id": "last", "predic')
    expected = _whole_sample_lines(file.read_bytes()[committed:])
    second = agent_factory(config, port)
    # Exactly the lines past the committed offset: none of those before it (no repeats),
    # all of those after it (no loss), and not the last line, which has no newline yet.
    poll(lambda: _received(second) == expected, 60, what=f"{expected} samples after restart")
    with file.open("ab") as out:
        out.write(b'tion": 1}\n')
    poll(lambda: _received(second) >= expected + 1, 30, what="the completed last line")
    poll(lambda: value(second.scrape(), "inferwatch_ndjson_file_behind_bytes") == 0,
         what="every file read to its end")
    assert _received(second) == expected + 1
    metrics = poll(lambda: (m := second.scrape()) and value(
        m, "inferwatch_ndjson_file_records_total", outcome="accepted") == expected + 1 and m,
        what="the plugin's own count")
    # A batch delivered before the kill but not yet committed comes again, once: the join
    # sees at most one batch of repeated request ids.
    assert (value(metrics, "inferwatch_samples_duplicate_total") or 0) <= BATCH


def test_lines_wait_in_their_file_until_ingest_is_enabled_by_a_reload(
        write_config: ConfigWriter, agent_factory, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "samples.ndjson").write_bytes(_samples(0, 120))
    full, port = _config(write_config, tmp_path)
    without_ingest = full.read_text().replace("[plugins.ingest]\nenabled = true",
                                              "[plugins.ingest]\nenabled = false")
    full.write_text(without_ingest)
    agent = agent_factory(full, port)
    poll(lambda: (value(agent.scrape(), "inferwatch_plugin_records_refused_total",
                        plugin="ndjson_file", reason="no_receiver") or 0) >= 50,
         30, what="a batch refused: no ingest plugin to take it")
    metrics = poll(lambda: (m := agent.scrape()) and (value(
        m, "inferwatch_ndjson_file_refused_batches_total", reason="no_receiver") or 0) >= 1
        and m, what="the plugin's own count of refused batches")
    assert value(metrics, "inferwatch_ndjson_file_records_total", outcome="accepted") == 0
    full.write_text(without_ingest.replace("[plugins.ingest]\nenabled = false",
                                           "[plugins.ingest]\nenabled = true"))
    agent.signal(signal.SIGHUP)
    poll(lambda: _received(agent) >= 120, 60, what="every waiting line, once ingest is on")
    poll(lambda: value(agent.scrape(), "inferwatch_ndjson_file_behind_bytes") == 0,
         what="the file read to its end")
    assert _received(agent) == 120
