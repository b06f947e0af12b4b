"""One run of the command: argv, a clean environment, the event on stdin, a timeout.

The process gets its own session (process group), so a timeout kills the script and what
it started; its output is read concurrently and kept up to `output_bytes`. The environment
is not the agent's (which may hold secrets referenced as `{env = ...}`): PATH, LANG, TZ and
the alert's INFERWATCH_* variables only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import dataclass
from typing import Any

from agent.alertroute import Alert
from agent.model import Event

KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_ENV_BAD = re.compile(r"[^A-Z0-9_]")
GRACE = 1.0  # SIGTERM, then SIGKILL this much later


@dataclass
class Outcome:
    status: str  # the exit code as text, "timeout" or "error"
    output: str
    code: int | None = None


def env_name(label: str) -> str:
    """`INFERWATCH_LABEL_<NAME>`: upper case, other characters `_`."""
    return "INFERWATCH_LABEL_" + (_ENV_BAD.sub("_", label.upper()) or "_")


def _value(text: object) -> str:
    return str(text).replace("\0", "")[:4096]


def environment(event: Event, alert: Alert) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    for name, val in sorted(alert.labels.items()):
        env[env_name(name)] = _value(val)
    note = alert.annotations
    env.update({
        "INFERWATCH_ALERT_NAME": _value(alert.alertname),
        "INFERWATCH_ALERT_STATUS": alert.status,
        "INFERWATCH_ALERT_SEVERITY": _value(event.severity),
        "INFERWATCH_ALERT_FINGERPRINT": _value(alert.fingerprint),
        "INFERWATCH_ALERT_SUMMARY": _value(note.get("summary", "")),
        "INFERWATCH_ALERT_DESCRIPTION": _value(note.get("description", "")),
        "INFERWATCH_ALERT_RUNBOOK_URL": _value(note.get("runbook_url", "")),
        "INFERWATCH_ALERT_STARTS_AT": _value(alert.startsAt),
        "INFERWATCH_ALERT_ENDS_AT": _value(alert.endsAt),
        "INFERWATCH_ALERT_RENEWAL": "1" if alert.renewal else "0",
        "INFERWATCH_ALERT_FALLBACK_FROM": _value(event.data.get("fallback_from", "")),
        "INFERWATCH_EVENT_ID": event.id,
        "INFERWATCH_EVENT_KIND": event.kind,
        "INFERWATCH_HOST": _value(event.host),
    })
    return env


async def run(argv: list[str], env: dict[str, str], stdin: bytes, timeout: float,
              limit: int) -> Outcome:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True, cwd="/")
    except OSError as exc:
        return Outcome("error", f"cannot start {argv[0]}: {exc.strerror or exc}")
    reader = asyncio.create_task(_read(proc, limit))
    try:
        async with asyncio.timeout(timeout):
            await _feed(proc, stdin)
            code = await proc.wait()
    except TimeoutError:
        await _kill(proc)
        return Outcome("timeout", await _output(reader))
    except asyncio.CancelledError:  # the agent stops: leave no orphan running the action
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        reader.cancel()
        raise
    return Outcome(str(code), await _output(reader), code)


async def _feed(proc: Any, data: bytes) -> None:
    """The event on stdin; a script that does not read it is not an error."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()


async def _read(proc: Any, limit: int) -> bytes:
    kept = bytearray()
    while chunk := await proc.stdout.read(65536):
        kept += chunk[:max(0, limit - len(kept))]
    return bytes(kept)


async def _output(reader: asyncio.Task[bytes]) -> str:
    """What it printed; a child left running with the pipe open is not waited for."""
    done, _ = await asyncio.wait({reader}, timeout=0.5)
    if not done:
        reader.cancel()
        return ""
    return reader.result().decode(errors="replace")


async def _kill(proc: Any) -> None:
    """SIGTERM the whole process group, SIGKILL it after GRACE."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GRACE):
                await proc.wait()
                if sig == signal.SIGTERM:
                    with contextlib.suppress(ProcessLookupError):  # the rest of the group
                        os.killpg(proc.pid, signal.SIGKILL)
                    return
