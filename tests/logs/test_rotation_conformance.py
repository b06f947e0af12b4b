"""Rotation conformance: the real agent tails, a file output receives, and after every kind
of rotation the receiver holds a byte-identical copy of the redacted lines, in order."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import poll
from tests.logs.harness import Shipper, numbered, redacted

pytestmark = pytest.mark.integration


@pytest.fixture
def shipper(tmp_path: Path) -> Iterator[Shipper]:
    ship = Shipper(tmp_path)
    yield ship
    ship.stop()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_rename_and_create(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    first, late, second = numbered(0, 500), numbered(500, 20), numbered(520, 500)
    log.write_bytes(first)
    shipper.start()
    shipper.wait_for(redacted(first))
    with log.open("ab") as old:
        log.rename(log.with_name("app.log.1"))
        log.write_bytes(second[:len(second) // 2])
        old.write(late)  # the writer had not reopened yet
    append(log, second[len(second) // 2:])
    got = shipper.wait_for(redacted(first + late + second))
    assert sorted(got.splitlines()) == sorted(redacted(first + late + second).splitlines())
    assert got.startswith(redacted(first))


def test_rename_to_a_name_the_glob_misses(shipper: Shipper) -> None:
    shipper.glob = "app.log"
    log = shipper.root / "in" / "app.log"
    shipper.start()
    with log.open("ab") as old:
        old.write(numbered(0, 100))
        poll(lambda: shipper.received().count(b"\n") == 100, what="100 lines")
        log.rename(log.with_name("app.log.old"))
        old.write(numbered(100, 50))  # drained for rotate_wait after the rename
    log.write_bytes(numbered(150, 50))
    got = shipper.wait_for(redacted(numbered(0, 200)))
    assert sorted(got.splitlines()) == redacted(numbered(0, 200)).splitlines()


def test_copytruncate(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    before = numbered(0, 300)
    log.write_bytes(before)
    shipper.start()
    shipper.wait_for(redacted(before))
    shipper.kill()  # so that lines written now are read only from the copy
    append(log, numbered(300, 100))
    shutil.copy(log, log.with_name("app.log.1"))
    os.truncate(log, 0)
    append(log, numbered(400, 100))
    shipper.start()
    got = shipper.wait_for(redacted(numbered(0, 500)))
    assert sorted(got.splitlines()) == redacted(numbered(0, 500)).splitlines()


def test_create_after_delay(shipper: Shipper) -> None:
    shipper.start()
    log = shipper.root / "in" / "app.log"
    assert shipper.received() == b""
    log.write_bytes(numbered(0, 100))
    assert shipper.wait_for(redacted(numbered(0, 100))) == redacted(numbered(0, 100))


def test_partial_line_across_a_rotation(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    shipper.start()
    log.write_bytes(b"complete\nhalf of a line")
    poll(lambda: shipper.received() == b"complete\n", what="the complete line")
    with log.open("ab") as old:
        log.rename(log.with_name("app.log.1"))
        log.write_bytes(b"new file\n")
        old.write(b", finished in the old file\n")
    got = shipper.wait_for(b"complete\nnew file\nhalf of a line, finished in the old file\n")
    assert sorted(got.splitlines()) == [b"complete", b"half of a line, finished in the old file",
                                        b"new file"]


def test_unterminated_last_line_of_a_rotated_file(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    shipper.glob = "app.log"
    log.write_bytes(b"one\ntwo (the writer died here)")
    shipper.start()
    log.rename(log.with_name("app.log.1"))
    log.write_bytes(b"three\n")
    got = shipper.wait_for(b"one\nthree\ntwo (the writer died here)\n")
    assert sorted(got.splitlines()) == [b"one", b"three", b"two (the writer died here)"]


def test_crash_in_the_middle_of_a_rotation(shipper: Shipper) -> None:
    shipper.glob = "app.log"  # the rotated name is not followed: found by its inode
    log = shipper.root / "in" / "app.log"
    log.write_bytes(numbered(0, 200))
    shipper.start()
    shipper.wait_for(redacted(numbered(0, 200)))
    shipper.kill()
    append(log, numbered(200, 100))  # written while the agent is down, then rotated
    log.rename(log.with_name("app.log.1"))
    log.write_bytes(numbered(300, 100))
    shipper.start()
    got = shipper.wait_for(redacted(numbered(0, 400)))
    assert sorted(got.splitlines()) == redacted(numbered(0, 400)).splitlines()
    assert shipper.metric("inferwatch_logs_rotations_total", input="app",
                          kind="rotated_found") in (1.0, -1.0)


def test_inode_reuse_is_not_the_same_file(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    old = numbered(0, 100)
    log.write_bytes(old)
    shipper.start()
    shipper.wait_for(redacted(old))
    shipper.kill()
    log.unlink()
    new = b"a new file, perhaps on the old inode\n" * 5  # shorter than the old offset
    log.write_bytes(new)
    shipper.start()
    assert shipper.wait_for(redacted(old) + new) == redacted(old) + new


def test_lines_of_200_kb(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    big = [(f"{i} user{i}@example.com ".encode() + b"y" * 200_000) for i in range(5)]
    shipper.start()
    for line in big:
        append(log, line[:150_000])
        append(log, line[150_000:] + b"\n")
    expected = b"".join(redacted(line) + b"\n" for line in big)
    assert shipper.wait_for(expected) == expected


def test_writes_while_the_output_is_down(shipper: Shipper) -> None:
    log = shipper.root / "in" / "app.log"
    shipper.out.mkdir()  # a folder where the file should be: every write fails
    shipper.start()
    log.write_bytes(numbered(0, 300))
    poll(lambda: shipper.metric("inferwatch_logs_output_errors_total", output="file",
                                reason="write_error") >= 1, what="a failed delivery")
    append(log, numbered(300, 300))
    poll(lambda: shipper.metric("inferwatch_logs_lines_queued_total", input="app") == 600,
         what="600 lines committed to the outbox")
    shipper.kill()  # and the agent dies while the output is down
    shipper.out.rmdir()
    shipper.start()
    expected = redacted(numbered(0, 600))
    assert shipper.wait_for(expected) == expected


def test_multiline_records_and_json_lines(shipper: Shipper) -> None:
    shipper.extra_input = "multiline_start = '^\\\\d{4}-'\nmultiline_timeout = \"100ms\""
    log = shipper.root / "in" / "app.log"
    traceback = (b"2026-01-01 ERROR request failed for bob@example.com\n"
                 b"Traceback (most recent call last):\n"
                 b'  File "server.py", line 3, in handle\n'
                 b"ValueError: bad input\n")
    json_line = b'{"level":"info","msg":"paid with 4111 1111 1111 1111","n":1}\n'
    log.write_bytes(traceback + b"2026-01-01 INFO ok\n" + b"2026-01-01 " + json_line)
    shipper.start()
    expected = (redacted(traceback) + b"2026-01-01 INFO ok\n"
                + b"2026-01-01 " + redacted(json_line))
    assert shipper.wait_for(expected) == expected
    log.unlink()
    log.write_bytes(json_line)  # a JSON line on its own is parsed and stays JSON
    clean = b'{"level":"info","msg":"paid with [REDACTED:CARD]","n":1}\n'
    assert shipper.wait_for(expected + clean) == expected + clean
