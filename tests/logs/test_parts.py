"""The shipper's smaller parts: checkpoints, config errors, syslog framing, bounded labels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.config import ConfigPath, build_config
from agent.errors import ConfigError
from agent.loader import discover
from agent.metrics import Accumulator
from plugins.logs import metrics as m
from plugins.logs.checkpoint import Checkpoints
from plugins.logs.outputs.base import Chunk
from plugins.logs.outputs.loki import push_body
from plugins.logs.outputs.syslog import frame, header
from plugins.logs.pipeline import FileLag
from plugins.logs.stats import LogsStats
from plugins.logs.tail import Saved

MODELS = discover().config_models()


def test_checkpoints_survive_a_reload_and_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    cp = Checkpoints(path)
    cp.begin({"1:2": 40})
    cp.commit({"1:2": Saved("/x.log", 10, "ab", 40)}, cursor="c9")
    state = Checkpoints(path).load()
    assert state.files == {"1:2": Saved("/x.log", 10, "ab", 40)}
    assert state.pending == {}
    assert state.cursor == "c9"
    assert not path.with_name("cp.json.tmp").exists()
    path.write_bytes(b'{"files": {"1:2": {"path": 3')  # a torn write from another tool
    broken = Checkpoints(path)
    assert broken.load().files == {}
    assert broken.corrupt
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["cp.json.corrupt"]


def _errors(section: str) -> list[str]:
    import tomllib  # noqa: PLC0415

    with pytest.raises(ConfigError) as info:
        build_config(tomllib.loads(section), MODELS)
    return info.value.problems


def test_config_errors_name_their_key() -> None:
    problems = _errors("""
[plugins.logs]
enabled = true
[[plugins.logs.inputs]]
paths = ["/var/log/*.log"]
redact = ["EMAIL", "PHONE"]
[[plugins.logs.inputs]]
journald = true
paths = ["/x"]
[[plugins.logs.inputs]]
paths = ["/y"]
multiline_start = "("
[[plugins.logs.outputs]]
type = "file"
[[plugins.logs.outputs]]
type = "loki"
url = "loki:3100"
[[plugins.logs.outputs]]
type = "kafka"
""")
    text = "\n".join(problems)
    assert "plugins.logs.inputs[1].paths: give paths (globs) or journald = true" in text
    assert "plugins.logs.inputs[2].multiline_start: invalid regex" in text
    assert "plugins.logs.outputs[0].path: a file output needs a path" in text
    assert "plugins.logs.outputs[1].url" in text
    assert "plugins.logs.outputs[2].type: must be one of" in text
    assert _errors("""
[plugins.logs]
enabled = true
[[plugins.logs.inputs]]
paths = ["/var/log/*.log"]
redact = ["EMAIL", "PHONE"]
[[plugins.logs.outputs]]
type = "file"
path = "/tmp/x"
""") == ["plugins.logs.inputs[0].redact: unknown rules ['PHONE'] "
         "(known: TOKEN, EMAIL, CARD, IPV4, IPV6)"]


def test_enabled_needs_an_input_and_an_output() -> None:
    assert _errors("[plugins.logs]\nenabled = true\n") == [
        "plugins.logs.inputs: enabled logs need at least one input and one output"]


def test_rfc5424_header_and_octet_counting() -> None:
    head = header(16, "error", 0.5, host="gpu-1", app="inferwatch", msgid="app")
    assert head == b"<131>1 1970-01-01T00:00:00.500000Z gpu-1 inferwatch - app - "
    assert header(1, "", 0.0, host="h", app="a", msgid="m").startswith(b"<14>1 ")
    message = head + "grüße\n".encode()
    assert frame(message) == b"%d " % len(message) + message  # octets, not characters


def test_loki_body_has_one_stream_per_file_and_increasing_stamps() -> None:
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415

    chunks = [Chunk("app", "/a.log", 10.0, [b"one", b"two"], ["", ""]),
              Chunk("app", "/b.log", 10.0, [b"three"], [""])]
    body = json.loads(gzip.decompress(push_body(chunks, "h", {"job": "j"})))
    streams = {s["stream"]["filename"]: s for s in body["streams"]}
    assert streams["/a.log"]["stream"] == {"job": "j", "host": "h", "input": "app",
                                           "filename": "/a.log"}
    stamps = [int(v[0]) for s in body["streams"] for v in s["values"]]
    assert stamps == [10_000_000_000, 10_000_000_001, 10_000_000_002]


class _Input:
    input = "app"
    read = shipped = duplicates = 0

    def __init__(self, files: int) -> None:
        self.checkpoints = Checkpoints(Path("unused"))
        self.lag = [FileLag(f"/logs/{i}.log", 10, float(i)) for i in range(files)]

    def figures(self) -> dict[str, dict[str, int]]:
        return {"redactions": {}, "dropped": {}, "rotations": {}, "truncated": {},
                "errors": {}, "files": {}}


def test_file_labels_are_bounded() -> None:
    out = Accumulator()
    asyncio.run(LogsStats([_Input(250)], [], max_files=100).collect(out))
    lag = out.series[m.LAG_BYTES]
    assert len(lag) == 101
    assert lag[("app", "_other")] == 150 * 10
    assert out.series[m.LAG_SECONDS][("app", "_other")] == 249.0
    assert out.series[m.FILES_UNLABELLED][("app",)] == 150
    assert out.series[m.FILES][("app",)] == 250


def test_the_dropped_lines_family_exists_before_any_line_is_dropped() -> None:
    out = Accumulator()
    asyncio.run(LogsStats([_Input(1)], [], max_files=100).collect(out))
    assert out.series[m.DROPPED] == {("app", "filtered"): 0, ("app", "sampled"): 0}


def test_an_unreadable_outbox_row_is_dropped_and_counted(tmp_path: Path) -> None:
    from agent.outbox import Outbox  # noqa: PLC0415
    from plugins.logs.outputs.base import LogOutbox, Sender  # noqa: PLC0415

    sent: list[bytes] = []

    class Collect(Sender):
        async def send(self, chunks: list[Chunk]) -> None:
            sent.extend(line for c in chunks for line in c.lines)

    async def main() -> int:
        box = LogOutbox("t", Outbox(tmp_path / "o.db", max_bytes=1 << 20, max_age=60))
        await box.put([Chunk("in", "/a", 1.0, [b"before"], [""])], "in")
        await box.run(box.outbox.put, [("in", b"\xc1 not msgpack")])
        await box.put([Chunk("in", "/a", 1.0, [b"after"], [""])], "in")
        sender = Collect("t", box)
        await sender.start()
        await sender._deliver(await box.run(box.outbox.take, 10))
        depth = box.outbox.depth
        await sender.stop()
        assert sender.undecodable == 1
        return depth

    assert asyncio.run(main()) == 0
    assert sent == [b"before", b"after"]


def test_a_batch_interrupted_before_its_commit_is_read_again_and_counted(
        tmp_path: Path) -> None:
    """The state a kill -9 leaves between `begin` and `commit`: that batch's lines come again
    and are counted as possible duplicates; the lines after it are not."""
    from agent.outbox import Outbox  # noqa: PLC0415
    from agent.redact import Redactor  # noqa: PLC0415
    from plugins.logs.config import LogInput  # noqa: PLC0415
    from plugins.logs.outputs.base import LogOutbox  # noqa: PLC0415
    from plugins.logs.pipeline import InputService  # noqa: PLC0415
    from plugins.logs.tail import fingerprint  # noqa: PLC0415

    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthree\nfour\n")
    st = log.stat()
    with log.open("rb") as f:
        fp = fingerprint(f.fileno())
    key = f"{st.st_dev}:{st.st_ino}"
    cp = Checkpoints(tmp_path / "cp.json")
    cp.commit({key: Saved(str(log), fp.size, fp.digest, 4)})  # "one" delivered
    cp.begin({key: 14})  # "two" and "three" were on their way

    async def main() -> InputService:
        box = LogOutbox("f", Outbox(tmp_path / "o.db", max_bytes=1 << 20, max_age=60))
        service = InputService("app", LogInput(paths=[ConfigPath(log)]), Redactor(), [box],
                               tmp_path / "cp.json", poll=0.01, scan=0.01, batch_bytes=1 << 20)
        await service.start()
        task = asyncio.create_task(service.run())
        for _ in range(300):
            if service.shipped >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
        await box.close()
        return service

    service = asyncio.run(main())
    assert service.shipped == 3
    assert service.duplicates == 2
    assert Checkpoints(tmp_path / "cp.json").load().files[key].offset == 19


def test_relative_globs_are_resolved_against_the_config_files_folder(tmp_path: Path) -> None:
    """As every other path in the config: under systemd the working directory is `/`, so a
    glob relative to it would silently follow nothing."""
    import tomllib  # noqa: PLC0415

    from plugins.logs.tail import Tailer  # noqa: PLC0415

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.log").write_text("one\n")
    (tmp_path / "b.log").write_text("two\n")
    config = build_config(tomllib.loads("""
[plugins.logs]
enabled = true
[[plugins.logs.inputs]]
paths = ["app/*.log", "b.log"]
[[plugins.logs.outputs]]
type = "file"
path = "shipped.log"
"""), MODELS, base_dir=tmp_path)
    logs = config.plugins["logs"]
    assert logs.inputs[0].paths == [f"{tmp_path}/app/*.log", f"{tmp_path}/b.log"]  # type: ignore[attr-defined]
    tailer = Tailer(logs.inputs[0].paths, max_line=1024, rotate_wait=1.0)  # type: ignore[attr-defined]
    assert tailer._paths() == [f"{tmp_path}/app/a.log", f"{tmp_path}/b.log"]
    assert all(type(p) is str for p in (*tailer.patterns, *tailer._paths()))
