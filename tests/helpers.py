"""Test helpers: polling with deadlines (never sleeps as synchronisation), ports, scraping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def poll(fn: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02,
         what: str = "condition") -> T:
    """Call fn until it returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := fn():
                return result
        except AssertionError:
            raise
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error}")


async def poll_async(fn: Callable[[], object], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """poll() for a test running on the event loop: yield to it between tries."""
    import asyncio  # noqa: PLC0415 - most helpers' users are synchronous

    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> str:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - test URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection; left to the GC it is a ResourceWarning
        raise


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from the Prometheus text format."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


@dataclass
class AgentProcess:
    """The real agent, as systemd would run it: a subprocess with its own config."""

    config: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return parse_metrics(http_get(f"{self.url}/metrics"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            return http_get(f"{self.url}/-/ready") == "OK\n"
        poll(ready, timeout, what="agent ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def agent_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_agent(config: Path, port: int, *args: str, env: dict[str, str] | None = None,
                wait: bool = True) -> AgentProcess:
    log_path = config.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(config), *args],
            stdout=log, stderr=subprocess.STDOUT, env=agent_env(env), cwd=config.parent,
        )
    agent = AgentProcess(config, port, proc, log_path)
    if wait:
        agent.wait_ready()
    return agent


def run_cli(*args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True,
        env=agent_env(env), cwd=cwd, timeout=60, check=False,
    )
