"""The real agent shipping logs: a config writer, a receiver file, and what it should hold."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from agent.redact import Redactor
from tests.helpers import AgentProcess, free_port, poll, start_agent

FAST_POLL = 'poll_interval = "20ms"\nscan_interval = "100ms"\n'
"""Tail settings that pick up writes and new files quickly (tests and benches wait on them)."""


def logs_agent(state_dir: str, port: int, logs: str = "") -> str:
    """The head of an agent config with only the logs plugin on, `logs` its extra settings;
    the inputs and outputs follow. Shared with bench/logs_ship.py."""
    return f"""
[agent]
state_dir = "{state_dir}"
[prometheus]
listen = "127.0.0.1:{port}"
[plugins.host]
enabled = false
[plugins.logs]
enabled = true
{logs}
"""


@dataclass
class Shipper:
    """The agent with one file input (`in/<glob>`) and one file output (`out/shipped.log`)."""

    root: Path
    glob: str = "app.log*"
    extra_input: str = ""
    extra_output: str = ""
    outputs: str = ""
    agent: AgentProcess | None = None
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        (self.root / "in").mkdir(parents=True, exist_ok=True)
        (self.root / "out").mkdir(exist_ok=True)

    @property
    def out(self) -> Path:
        return self.root / "out" / "shipped.log"

    def config(self) -> Path:
        path = self.root / "agent.toml"
        path.write_text(logs_agent("state", self.port, FAST_POLL + 'interval = "200ms"')
                        + f"""[[plugins.logs.inputs]]
name = "app"
paths = ["in/{self.glob}"]
rotate_wait = "300ms"
{self.extra_input}
{self.outputs or f'''[[plugins.logs.outputs]]
type = "file"
path = "out/shipped.log"
fsync = false
{self.extra_output}'''}
""")
        return path

    def start(self) -> AgentProcess:
        self.agent = start_agent(self.config(), self.port)
        return self.agent

    def kill(self) -> None:
        assert self.agent is not None
        self.agent.signal(signal.SIGKILL)
        self.agent.proc.wait(10)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()

    def received(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""

    def wait_for(self, expected: bytes, timeout: float = 15.0) -> bytes:
        """Poll until the receiver holds at least as many bytes; return what it holds."""
        poll(lambda: len(self.received()) >= len(expected), timeout,
             what=f"{len(expected)} bytes at the receiver (have {len(self.received())})")
        return self.received()

    def metric(self, name: str, **labels: str) -> float:
        assert self.agent is not None
        found = self.agent.scrape().get((name, tuple(sorted(labels.items()))))
        return -1.0 if found is None else found


def redacted(text: bytes) -> bytes:
    """What the default rules make of `text`, line by line (the expected receiver copy)."""
    redactor = Redactor()
    lines = text.decode("utf-8", "surrogateescape").split("\n")
    return "\n".join(redactor.redact(x) for x in lines).encode("utf-8", "surrogateescape")


def numbered(start: int, count: int, width: int = 60) -> bytes:
    """Lines that say their number (so loss, order and duplicates show), some with PII."""
    out = []
    for i in range(start, start + count):
        pii = f" user{i}@example.com from 10.0.{i % 256}.{i % 200}" if i % 3 == 0 else ""
        out.append(f"line {i:07d}{pii} ".ljust(width, "x"))
    return ("\n".join(out) + "\n").encode()
