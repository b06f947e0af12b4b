"""The journald input: entries to lines, and the cursor kept like a file offset.

The real journalctl is used when it can read a journal here (not in a container without
journald: then that test is skipped). The cursor test runs a stand-in `journalctl` script
that prints a fixed set of entries in `-o json` form after the `--after-cursor` it is given,
to check our side of the protocol: resume after the committed cursor, nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.outbox import Outbox
from agent.redact import Redactor
from plugins.logs.config import LogInput
from plugins.logs.journald import JournalService, entry_line
from plugins.logs.outputs.base import LogOutbox, _decode

STAND_IN = """\
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
args = sys.argv[2:]
after = args[args.index("--after-cursor") + 1] if "--after-cursor" in args else None
start = 0 if after is None else [e["__CURSOR"] for e in entries].index(after) + 1
for entry in entries[start:]:
    print(json.dumps(entry), flush=True)
sys.stdin.read()  # --follow: wait to be stopped
"""


def test_entry_line() -> None:
    assert entry_line({"MESSAGE": "hi", "PRIORITY": "3"}) == (b"hi", "error")
    assert entry_line({"MESSAGE": [104, 255]}) == (b"h\xff", "")
    assert entry_line({}) == (b"", "")


def _journal_readable() -> bool:
    try:
        out = subprocess.run(["journalctl", "-n", "1", "-o", "json", "--no-pager"],
                             capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().startswith(b"{")


@pytest.mark.skipif(not _journal_readable(), reason="journalctl cannot read a journal here")
def test_real_journalctl_is_followed(tmp_path: Path) -> None:
    service, _ = _service(tmp_path, "journalctl", ["--lines", "5"])  # the last 5, then new
    asyncio.run(_run_until(service, lambda: bool(service.checkpoints.state.cursor)))
    assert service.read >= 1


def _service(tmp_path: Path, command: str, args: list[str]) -> tuple[JournalService, Outbox]:
    outbox = Outbox(tmp_path / "out.db", max_bytes=1 << 20, max_age=3600)
    config = LogInput(journald=True, journal_args=args)
    service = JournalService("journal", config, Redactor(), [LogOutbox("file", outbox)],
                             tmp_path / "checkpoint.json", batch_bytes=1 << 20)
    service.command = command
    return service, outbox


async def _run_until(service: JournalService, done: object) -> None:
    await service.start()
    task = asyncio.create_task(service.run())
    for _ in range(500):
        if done():  # type: ignore[operator]
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await service.stop()
    for box in service.boxes:
        await box.close()


def test_the_cursor_resumes_after_the_last_committed_entry(tmp_path: Path) -> None:
    entries = tmp_path / "entries.jsonl"
    entries.write_text("".join(json.dumps({
        "__CURSOR": f"c{i}", "MESSAGE": f"entry {i} from bob@example.com", "PRIORITY": "6"})
        + "\n" for i in range(5)))
    script = tmp_path / "journalctl"
    script.write_text(f"#!{sys.executable}\n{STAND_IN}")
    script.chmod(0o755)
    service, outbox = _service(tmp_path, str(script), [])
    service.argv = lambda: [str(script), str(entries),  # type: ignore[method-assign]
                            *JournalService.argv(service)[1:]]
    asyncio.run(_run_until(service, lambda: service.checkpoints.state.cursor == "c4"))
    assert service.read == 5
    with entries.open("a") as f:
        f.write(json.dumps({"__CURSOR": "c5", "MESSAGE": "entry 5", "PRIORITY": "3"}) + "\n")
    again, _ = _service(tmp_path, str(script), [])
    again.argv = lambda: [str(script), str(entries),  # type: ignore[method-assign]
                          *JournalService.argv(again)[1:]]
    asyncio.run(_run_until(again, lambda: again.checkpoints.state.cursor == "c5"))
    assert again.read == 1  # only the new entry
    outbox.open()
    lines = [line for _, _, payload in outbox.take(100) for line in _decode(payload).lines]
    outbox.close()
    assert lines == [f"entry {i} from [REDACTED:EMAIL]".encode() for i in range(5)] + [b"entry 5"]
