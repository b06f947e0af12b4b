"""The tailer against files an attacker (or an accident) puts where the globs look: symlinks
to files outside the log folder, a FIFO or a directory swapped in after the glob's check, a
10 MB line without a newline; and a redaction key that others can read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agent.config import build_config
from agent.exposure import warnings
from plugins.ingest.config import IngestConfig
from plugins.logs.config import LogsConfig
from plugins.logs.tail import TRUNCATED_MARK, Tailer


def _lines(t: Tailer) -> list[bytes]:
    t.scan()
    return [data for _, found in t.read(1 << 24) for data, _ in found]


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    logs, outside = tmp_path / "logs", tmp_path / "secret"
    logs.mkdir()
    outside.mkdir()
    (outside / "shadow").write_bytes(b"root:$6$hash\n")
    (logs / "app.log").write_bytes(b"hello\n")
    (logs / "evil.log").symlink_to(outside / "shadow")
    (logs / "sub").mkdir()
    (logs / "sub" / "real.log").write_bytes(b"inside\n")
    (logs / "inner.log").symlink_to(logs / "sub" / "real.log")
    return logs, outside


def test_a_symlink_out_of_the_folder_is_refused_and_counted(tmp_path: Path) -> None:
    logs, _ = _folders(tmp_path)
    t = Tailer([str(logs / "*.log")], max_line=1024, rotate_wait=0.05)
    assert sorted(_lines(t)) == [b"hello", b"inside"]  # the link inside is followed
    assert t.counts["symlink_refused"] == 1


@pytest.mark.parametrize(("mode", "expected", "refused"), [
    ("follow", [b"hello", b"inside", b"root:$6$hash"], 0),
    ("skip", [b"hello"], 2),
])
def test_symlink_modes(tmp_path: Path, mode: str, expected: list[bytes], refused: int) -> None:
    logs, _ = _folders(tmp_path)
    t = Tailer([str(logs / "*.log")], max_line=1024, rotate_wait=0.05, symlinks=mode)
    assert sorted(_lines(t)) == expected
    assert t.counts["symlink_refused"] == refused


def test_a_named_symlink_is_followed(tmp_path: Path) -> None:
    logs, _ = _folders(tmp_path)
    t = Tailer([str(logs / "evil.log")], max_line=1024, rotate_wait=0.05)
    assert _lines(t) == [b"root:$6$hash"]  # no wildcard: the user chose that link


class _Racy(Tailer):
    """The glob checked a regular file; by the open, a FIFO or a directory is there."""

    def _paths(self) -> list[str]:
        return list(self.patterns)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_swapped_in_is_not_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "app.log"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    t = _Racy([str(path)], max_line=1024, rotate_wait=0.05)
    done = threading.Event()

    def scan() -> None:
        _lines(t)
        done.set()

    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    assert done.wait(10), "opening a FIFO with no writer blocked the tailer"
    assert t.files == {}
    assert t.counts["not_regular"] == 1


def test_a_10_mb_line_without_newline_is_held_bounded_then_cut(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"x" * 10_000_000)
    t = Tailer([str(tmp_path / "*.log")], max_line=256 * 1024, rotate_wait=60)
    for _ in range(12):  # read 1 MiB at a time: nothing ships, at most max_line + 1 held
        assert _lines(t) == []
        assert all(len(f.held) <= 256 * 1024 + 1 for f in t.files.values())
    with log.open("ab") as f:
        f.write(b"\nnext\n")
    got = _lines(t)
    assert got == [b"x" * 256 * 1024 + TRUNCATED_MARK, b"next"]
    assert t.counts["truncated_lines"] == 1


@pytest.mark.parametrize("plugin", ["logs", "ingest"])
def test_a_redaction_key_others_can_read_is_warned(tmp_path: Path, plugin: str) -> None:
    key = tmp_path / "hmac.key"
    key.write_text("a long random key\n")
    key.chmod(0o644)
    section: dict[str, object] = {"enabled": True, "redaction": {
        "pseudonymise": ["EMAIL"], "key": {"file": str(key)}}}
    if plugin == "ingest":
        section["redact"] = ["EMAIL"]
    else:
        section["inputs"] = [{"paths": [str(tmp_path / "*.log")]}]
        section["outputs"] = [{"type": "file", "path": str(tmp_path / "out.txt")}]
    config = build_config({"plugins": {plugin: section}},
                          {"logs": LogsConfig, "ingest": IngestConfig}, base_dir=tmp_path)
    assert warnings(config) == [
        f"plugins.{plugin}.redaction.key: secret file {key} is readable by group or others "
        f"(mode 0644); chmod 600 it"]
    key.chmod(0o600)
    assert warnings(config) == []


@pytest.mark.parametrize("depth", [10, 600, 990])
def test_a_deeply_nested_json_line_is_redacted_not_a_crash(depth: int) -> None:
    """msgspec decodes ~1000 levels; walking them recursively raised RecursionError on every
    retry of the line (an input stuck for good). Deep containers are redacted as text."""
    from agent.redact import MAX_DEPTH, Redactor  # noqa: PLC0415
    from plugins.logs.parse import Shaper  # noqa: PLC0415

    shaper = Shaper(Redactor(), parse="auto", keep=[], drop=[], debug_per_second=0)
    nested = b"[" * depth + b'"bob@example.com"' + b"]" * depth
    record = shaper.shape(b'{"msg": "hi", "deep": ' + nested + b"}")
    assert record is not None
    assert b"bob@example.com" not in record.line
    assert b"[REDACTED:" in record.line
    clean = b'{"msg": "hi", "deep": ' + nested.replace(b"bob@example.com", b"bob") + b"}"
    kept = shaper.shape(clean)
    assert kept is not None
    if depth < 900:  # nothing to redact: the line ships as it came
        assert kept.line == clean
    assert depth > MAX_DEPTH or b"[REDACTED:EMAIL]" in record.line


def test_a_deeply_nested_sample_is_redacted_not_a_crash() -> None:
    from agent.model import Sample  # noqa: PLC0415
    from agent.redact import Redactor  # noqa: PLC0415
    from plugins.ingest.decode import decode, feature_values  # noqa: PLC0415
    from plugins.ingest.redaction import redact_record  # noqa: PLC0415

    nested = b"[" * 600 + b'"bob@example.com"' + b"]" * 600
    sample, _ = decode(b'{"model": "m", "request_id": "r", "prediction": 1, '
                       b'"features": {"x": 1.5, "deep": ' + nested + b"}}")
    assert isinstance(sample, Sample)
    clean = redact_record(sample, Redactor())
    assert isinstance(clean, Sample)
    values = feature_values(clean)
    assert values["x"] == 1.5
    assert "bob@example.com" not in str(values)
    assert "[REDACTED:EMAIL]" in str(values)
