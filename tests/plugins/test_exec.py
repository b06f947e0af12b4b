"""The exec sink runs a real script: environment, stdin, timeout, concurrency, routing."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.alertroute import fallback_event
from agent.config import ConfigError, build_config
from agent.model import Event
from plugins.exec.config import ExecConfig
from plugins.exec.runner import env_name, run
from plugins.exec.sink import ExecSink
from tests.fixtures.iwtest.alerts import alert_event
from tests.helpers import poll

RECORD = f"""#!{sys.executable}
# Appends one JSON line per run: the INFERWATCH_* environment, stdin and PATH.
import json, os, sys
env = {{k: v for k, v in os.environ.items() if k.startswith("INFERWATCH_")}}
line = {{"env": env, "stdin": json.load(sys.stdin), "path": os.environ.get("PATH")}}
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(line) + "\\n")
"""


@pytest.fixture(autouse=True)
def _collect_killed_children() -> Iterator[None]:
    """A test that kills an action (timeout, stop) can leave asyncio's subprocess transport
    to the garbage collector, whose ResourceWarning then failed whichever later test it
    happened to run in (CI, once): collected here, at the end of the test that made it."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _script(tmp_path: Path, text: str, name: str = "action.sh") -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _sink(tmp_path: Path, **keys: Any) -> tuple[ExecSink, Path]:
    out = tmp_path / "runs.jsonl"
    keys.setdefault("command", [_script(tmp_path, RECORD), str(out)])
    config = build_config({"plugins": {"exec": {"enabled": True, **keys}}},
                          {"exec": ExecConfig}).plugins["exec"]
    assert isinstance(config, ExecConfig)
    return ExecSink(config, "exec"), out


def _runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


GPU = {"gpu-uuid": "GPU-1", "team": "ml"}


async def test_firing_runs_the_script_with_the_alert_in_env_and_stdin(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path)
    event = alert_event("GpuXid", labels=GPU, severity="critical", summary="XID 79 on GPU-1")
    await sink.deliver([event])
    (record,) = _runs(out)
    env = record["env"]
    assert env["INFERWATCH_ALERT_NAME"] == "GpuXid"
    assert env["INFERWATCH_ALERT_STATUS"] == "firing"
    assert env["INFERWATCH_ALERT_SEVERITY"] == "critical"
    assert env["INFERWATCH_ALERT_FINGERPRINT"] == event.data["fingerprint"]
    assert env["INFERWATCH_ALERT_SUMMARY"] == "XID 79 on GPU-1"
    assert env["INFERWATCH_LABEL_GPU_UUID"] == "GPU-1"
    assert env["INFERWATCH_LABEL_TEAM"] == "ml"
    assert record["stdin"] == json.loads(event.to_json())
    assert sink.runs == {"0": 1}


async def test_the_agents_environment_is_not_passed_on(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    sink, out = _sink(tmp_path)
    await sink.deliver([alert_event("A")])
    (record,) = _runs(out)
    assert "INFERWATCH_SECRET_TOKEN" not in record["env"]
    assert record["path"] == os.environ["PATH"]


async def test_renewals_run_nothing_unless_asked(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path)
    await sink.deliver([alert_event("A"), alert_event("A", renewal=True)])
    assert len(_runs(out)) == 1
    assert sink.skipped["renewal"] == 1
    (tmp_path / "b").mkdir()
    sink, out = _sink(tmp_path / "b", on_renewal=True)
    await sink.deliver([alert_event("A"), alert_event("A", renewal=True)])
    assert len(_runs(out)) == 2


async def test_repeat_interval_runs_a_renewal_once_due(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path, repeat_interval="10ms")
    await sink.deliver([alert_event("A"), alert_event("A", renewal=True)])
    assert len(_runs(out)) == 1, "not due yet"
    await asyncio.sleep(0.02)
    await sink.deliver([alert_event("A", renewal=True)])
    assert len(_runs(out)) == 2


async def test_resolve_runs_only_when_configured(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path)
    await sink.deliver([alert_event("A"), alert_event("A", "resolved")])
    assert [r["env"]["INFERWATCH_ALERT_STATUS"] for r in _runs(out)] == ["firing"]
    assert sink.skipped["resolve"] == 1
    (tmp_path / "b").mkdir()
    sink, out = _sink(tmp_path / "b", on_resolve=True)
    await sink.deliver([alert_event("A"), alert_event("A", "resolved")])
    assert [r["env"]["INFERWATCH_ALERT_STATUS"] for r in _runs(out)] == ["firing", "resolved"]


async def test_group_by_runs_once_per_group(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path, group_by=["alertname"], on_resolve=True)
    one, two = (alert_event("Xid", labels={"gpu": g}) for g in ("0", "1"))
    await sink.deliver([one, two])
    await sink.deliver([alert_event("Xid", "resolved", labels={"gpu": "0"})])
    assert len(_runs(out)) == 1, "the group still fires: no resolve action yet"
    await sink.deliver([alert_event("Xid", "resolved", labels={"gpu": "1"})])
    assert [r["env"]["INFERWATCH_ALERT_STATUS"] for r in _runs(out)] == ["firing", "resolved"]
    assert sink.skipped["grouped"] == 2


async def test_exit_codes_are_counted_and_not_retried(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path, command=[_script(tmp_path, "#!/bin/sh\nexit 3\n", "fail.sh")])
    await sink.deliver([alert_event("A"), alert_event("B")])
    assert sink.runs == {"3": 2}


async def test_a_missing_program_is_an_error_not_a_crash(tmp_path: Path) -> None:
    program = _script(tmp_path, "#!/bin/sh\n", "gone.sh")
    sink, _ = _sink(tmp_path, command=[program])
    Path(program).unlink()  # removed after the config was checked
    await sink.deliver([alert_event("A")])
    assert sink.runs == {"error": 1}


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n", "hang.sh")
    outcome = await run([script], {"PATH": os.environ["PATH"]}, b"", 0.5, 100)
    assert outcome.status == "timeout"
    child = int(pidfile.read_text())
    poll(lambda: _dead(child), 5, what="the script's child killed with it")


async def test_a_stopping_agent_leaves_no_orphan(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n", "hang.sh")
    task = asyncio.create_task(run([script], {"PATH": os.environ["PATH"]}, b"", 30, 100))
    await asyncio.to_thread(poll, pidfile.exists, 5, 0.02, "the script started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(pidfile.read_text())
    await asyncio.to_thread(poll, lambda: _dead(child), 5, 0.02, "the child killed")


def _dead(pid: int) -> bool:
    """Gone, or a zombie (a container's PID 1 may never reap the orphan)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_output_is_captured_and_bounded(tmp_path: Path) -> None:
    script = _script(tmp_path, "#!/bin/sh\necho start\nhead -c 100000 /dev/zero | tr '\\0' x\n"
                     "echo oops >&2\n", "loud.sh")
    outcome = await run([script], {"PATH": os.environ["PATH"]}, b"", 5, 50)
    assert outcome.status == "0"
    assert outcome.output == "start\n" + "x" * 44


async def test_concurrency_is_limited(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    folder.mkdir()
    peak = tmp_path / "peak"
    script = _script(tmp_path, f"""#!/bin/sh
touch {folder}/$$
ls {folder} | wc -l >> {peak}
sleep 0.3
rm {folder}/$$
""", "slow.sh")
    sink, _ = _sink(tmp_path, command=[script], max_concurrent=2)
    await sink.deliver([alert_event(f"A{i}") for i in range(5)])
    counts = [int(x) for x in peak.read_text().split()]
    assert len(counts) == 5
    assert max(counts) == 2


async def test_routing_by_labels_severity_and_fallback_target(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path, match_labels={"team": "ml*"}, min_severity="warning")
    await sink.deliver([
        alert_event("Mine", labels={"team": "ml-infra"}),
        alert_event("Theirs", labels={"team": "web"}),
        alert_event("Quiet", labels={"team": "ml"}, severity="info"),
        fallback_event(alert_event("ForOther", labels={"team": "ml"}), "alertmanager", "other"),
        fallback_event(alert_event("ForMe", labels={"team": "ml"}), "alertmanager", "exec"),
        Event(kind="drift.detected", source="drift", host="h"),
    ])
    runs = {r["env"]["INFERWATCH_ALERT_NAME"]: r["env"] for r in _runs(out)}
    assert sorted(runs) == ["ForMe", "Mine"]
    assert runs["ForMe"]["INFERWATCH_ALERT_FALLBACK_FROM"] == "alertmanager"
    assert runs["ForMe"]["INFERWATCH_EVENT_KIND"] == "alert.fallback"


async def test_malformed_alert_events_are_counted(tmp_path: Path) -> None:
    sink, out = _sink(tmp_path)
    bad = Event(kind="alert.firing", source="x", host="h", data={"alertname": 3})
    await sink.deliver([bad, alert_event("Good")])
    assert sink.skipped["malformed"] == 1
    assert len(_runs(out)) == 1


def test_label_names_become_environment_names() -> None:
    assert env_name("gpu-uuid") == "INFERWATCH_LABEL_GPU_UUID"
    assert env_name("médèle.ver") == "INFERWATCH_LABEL_M_D_LE_VER"


@pytest.mark.parametrize(("keys", "problem"), [
    ({"command": ["run.sh"]}, "plugins.exec.command: the program must be an absolute path"),
    ({"command": ["/nonexistent/on-alert.sh"]},
     "plugins.exec.command: /nonexistent/on-alert.sh: no such file"),
    ({"command": ["/tmp"]}, "plugins.exec.command: /tmp: not a file"),
    ({}, "plugins.exec.command: required"),
    ({"command": ["/bin/true"], "fallback": "mqtt"}, "plugins.exec.fallback: this sink cannot"),
    ({"command": ["/bin/true"], "match": []},
     "plugins.exec.match: needs at least one non-empty kind glob"),
])
def test_config_errors_name_their_key(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"exec": {"enabled": True, **keys}}}, {"exec": ExecConfig})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_program_that_is_not_executable_is_a_config_error(tmp_path: Path) -> None:
    program = tmp_path / "on-alert.sh"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        build_config({"plugins": {"exec": {"enabled": True, "command": [str(program)]}}},
                     {"exec": ExecConfig})
    assert caught.value.problems == [
        f"plugins.exec.command: {program}: not executable (chmod +x it)"]
