"""The tailer on real files: identity, rotation, partial and over-long lines."""

from __future__ import annotations

import gzip
import os
import shutil
import time
from pathlib import Path

import pytest

from agent.redact import Redactor
from plugins.logs.multiline import Joiner
from plugins.logs.parse import Shaper, describe, parse_json
from plugins.logs.tail import TRUNCATED_MARK, Saved, Tailer


def tailer(tmp_path: Path, **kw: object) -> Tailer:
    args: dict[str, object] = {"max_line": 1024, "rotate_wait": 0.05}
    args.update(kw)
    return Tailer([str(tmp_path / "*.log")], **args)  # type: ignore[arg-type]


def lines(t: Tailer) -> list[bytes]:
    t.scan()
    return [data for _, found in t.read(1 << 20) for data, _ in found]


def _checkpoint_after_first_line(log: Path, data: bytes) -> tuple[str, Saved]:
    """`data` written to `log` and read by a tailer, closed after (the agent stops): the
    file's key and the checkpoint it would have saved after shipping the first line."""
    log.write_bytes(data)
    t = tailer(log.parent)
    t.scan()
    (tracked, found), = list(t.read(1 << 20))
    t.close()
    return tracked.key, Saved(str(log), tracked.fp.size, tracked.fp.digest, found[0][1])


def test_partial_line_is_held_until_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntw")
    t = tailer(tmp_path)
    assert lines(t) == [b"one"]
    with log.open("ab") as f:
        f.write(b"o\n")
    assert lines(t) == [b"two"]


def test_a_split_inside_a_utf8_character_is_held(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    word = "grüße €".encode()
    log.write_bytes(word[:3])  # ends inside 'ü'
    t = tailer(tmp_path)
    assert lines(t) == []
    with log.open("ab") as f:
        f.write(word[3:] + b"\n")
    assert lines(t) == [word]
    assert lines(t)[0:0] == []


def test_over_long_lines_are_cut_marked_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    long = "é".encode() * 700  # 1400 bytes, max 1024: the cut falls between characters
    log.write_bytes(long[:900])
    t = tailer(tmp_path)
    assert lines(t) == []
    with log.open("ab") as f:
        f.write(long[900:] + b"\nnext\n")
    got = lines(t)
    assert got == [long[:1024] + TRUNCATED_MARK, b"next"]
    assert got[0][:-len(TRUNCATED_MARK)].decode()  # still valid UTF-8
    assert t.counts["truncated_lines"] == 1


def test_lines_of_200_kb_are_whole_by_default(tmp_path: Path) -> None:
    line = b"x" * 200_000
    (tmp_path / "a.log").write_bytes(line + b"\n")
    t = tailer(tmp_path, max_line=256 * 1024)
    assert lines(t) == [line]


def test_rename_and_create_drains_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"1\n")
    t = tailer(tmp_path)
    assert lines(t) == [b"1"]
    with log.open("ab") as f:
        log.rename(tmp_path / "a.log.1")  # not matched by the glob
        log.write_bytes(b"3\n")
        f.write(b"2\n")  # the writer still holds the old file
    assert sorted(lines(t)) == [b"2", b"3"]
    time.sleep(0.06)
    assert [x.path for x in t.close_drained()] == [str(tmp_path / "a.log")]
    assert len(t.files) == 1


def test_copytruncate_follows_the_copy_from_our_offset(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"first line of the file\n")
    t = tailer(tmp_path)
    assert lines(t) == [b"first line of the file"]
    with log.open("ab") as f:
        f.write(b"written before the copy\n")
    shutil.copy(log, tmp_path / "a.1.log")  # matched by the glob
    with log.open("r+b") as f:
        f.truncate(0)
    with log.open("ab") as f:
        f.write(b"after\n")
    assert sorted(lines(t)) == [b"after", b"written before the copy"]
    assert t.counts["truncations"] == 1
    assert t.counts["copies_followed"] == 1


def test_inode_reuse_is_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"old contents\n")
    st = log.stat()
    t = tailer(tmp_path)
    key = f"{st.st_dev}:{st.st_ino}"
    t.restore({key: Saved(str(log), 13, "0" * 32, 13)})  # another file had this inode
    assert lines(t) == [b"old contents"]
    assert t.counts["inode_reused"] == 1


def test_a_checkpoint_resumes_the_same_file(tmp_path: Path) -> None:
    key, saved = _checkpoint_after_first_line(tmp_path / "a.log", b"a\nb\n")
    again = tailer(tmp_path)
    again.restore({key: saved})
    assert lines(again) == [b"b"]


def test_compressed_rotations_are_ignored(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "a.log.gz", "wb") as f:
        f.write(b"zipped\n")
    (tmp_path / "b.log").write_bytes(b"plain\n")
    t = Tailer([str(tmp_path / "*")], max_line=1024, rotate_wait=1)
    assert lines(t) == [b"plain"]


def test_start_at_end_skips_what_was_there(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"old\nold2\n")
    t = tailer(tmp_path, start_at_end=True)
    assert lines(t) == []
    with log.open("ab") as f:
        f.write(b"new\n")
    assert lines(t) == [b"new"]


def test_multiline_joins_a_traceback() -> None:
    joiner = Joiner(r"^\d{4}-", timeout=1.0, max_bytes=1 << 20)
    got = joiner.feed([(b"2026-01-01 ERROR boom", 10), (b"Traceback:", 20),
                       (b"  File x", 30), (b"2026-01-01 INFO ok", 40)], now=0.0)
    assert got == [(b"2026-01-01 ERROR boom\nTraceback:\n  File x", 30)]
    assert joiner.due(0.5) == []
    assert joiner.due(1.0) == [(b"2026-01-01 INFO ok", 40)]


def test_json_lines_are_parsed_and_plain_lines_kept() -> None:
    obj = parse_json(b'{"level":"WARN","ts":"2026-01-01T00:00:00Z","msg":"hi","user":"u1"}')
    assert obj is not None
    assert describe(obj) == ("warn", "2026-01-01T00:00:00Z", "hi", {"user": "u1"})
    assert parse_json(b"{not json") is None
    assert parse_json(b"[1, 2]") is None
    shaper = Shaper(Redactor(), parse="auto", keep=[], drop=[], debug_per_second=0)
    plain = b"plain \xff bytes a@b.io"
    assert shaper.shape(plain).line == b"plain \xff bytes [REDACTED:EMAIL]"  # type: ignore[union-attr]
    record = shaper.shape(b'{"level": "info", "msg": "card 4111111111111111", '
                          b'"n": 4111111111111111}')
    assert record is not None
    assert record.line == (b'{"level":"info","msg":"card [REDACTED:CARD]",'
                           b'"n":"[REDACTED:CARD]"}')
    untouched = b'{"level": "info",  "msg": "nothing here"}'
    assert shaper.shape(untouched).line == untouched  # type: ignore[union-attr]


@pytest.mark.parametrize("depth", [600, 900])
def test_a_deeply_nested_json_line_ships_redacted(depth: int) -> None:
    """msgspec decodes it; redaction recursed per level and raised RecursionError, which
    stopped the input on that line for good (re-read after every restart)."""
    shaper = Shaper(Redactor(), parse="auto", keep=[], drop=[], debug_per_second=0)
    line = b'{"msg":"x","a":' + b"[" * depth + b'"a@b.io"' + b"]" * depth + b"}"
    record = shaper.shape(line)
    assert record is not None
    assert b"a@b.io" not in record.line
    # Too deep even to encode as text (900): the part is masked whole, failing closed.
    assert b"[REDACTED:EMAIL]" in record.line or b"[REDACTED:DEPTH]" in record.line
    if depth < 800:
        untouched = line.replace(b"a@b.io", b"nothing")
        assert shaper.shape(untouched).line == untouched  # type: ignore[union-attr]


def test_filters_and_debug_sampling() -> None:
    shaper = Shaper(Redactor(()), parse="auto", keep=["keep"], drop=["noisy"],
                    debug_per_second=2)
    assert shaper.shape(b"other") is None
    assert shaper.shape(b"keep but noisy") is None
    debug = [shaper.shape(b'{"level":"debug","msg":"keep"}') for _ in range(5)]
    assert sum(r is not None for r in debug) == 2
    assert shaper.dropped == {"filtered": 2, "sampled": 3}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_counted(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"x\n")
    log.chmod(0)
    t = tailer(tmp_path)
    assert lines(t) == []
    assert t.counts["open_error"] == 1


def test_a_file_rotated_while_down_is_found_and_drained(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    key, saved = _checkpoint_after_first_line(log, b"shipped\nnot yet\n")
    log.rename(tmp_path / "a.log.1")  # the agent was down during the rotation
    log.write_bytes(b"new file\n")
    again = tailer(tmp_path)
    again.restore({key: saved})
    assert sorted(lines(again)) == [b"new file", b"not yet"]
    assert again.counts["rotated_found"] == 1
    assert again.saved == {}


def test_a_rotated_files_unterminated_last_line_ships_when_it_is_done(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"whole\nhalf")
    t = tailer(tmp_path)
    assert lines(t) == [b"whole"]
    log.rename(tmp_path / "a.log.old")
    assert lines(t) == []
    time.sleep(0.06)
    assert lines(t) == [b"half"]
    assert [x.path for x in t.close_drained()] == [str(log)]


def test_files_past_max_files_are_counted_not_opened(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.log").write_bytes(b"x\n")
    t = tailer(tmp_path, max_files=3)
    assert len(lines(t)) == 3
    assert t.over_limit == 2


def test_a_file_moved_away_and_back_is_followed_on(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"1\n")
    t = tailer(tmp_path)
    assert lines(t) == [b"1"]
    log.rename(tmp_path / "a.tmp")
    assert lines(t) == []
    (tmp_path / "a.tmp").rename(log)
    assert lines(t) == []
    time.sleep(0.06)
    assert t.close_drained() == []  # back in the glob: not closed, not read again
    with log.open("ab") as f:
        f.write(b"2\n")
    assert lines(t) == [b"2"]
