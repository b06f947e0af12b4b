"""Shared fixtures: a config writer and the real agent as a subprocess."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import AgentProcess, free_port, start_agent

ConfigWriter = Callable[..., tuple[Path, int]]

# Generation speed depends on how loaded the machine is (CI runs the suite beside its
# servers); a slow draw is not a failure of the code under test. Deadlines likewise.
settings.register_profile("inferwatch", suppress_health_check=[HealthCheck.too_slow],
                          deadline=None)
# HYPOTHESIS_PROFILE=fuzz (`make fuzz` runs tests/fuzz with it): the same properties, longer.
settings.register_profile("fuzz", parent=settings.get_profile("inferwatch"),
                          max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "inferwatch"))


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    """Write agent.toml into tmp_path with a free port and a private state dir."""

    def write(body: str = "", *, name: str = "agent.toml", port: int | None = None,
              prometheus: str = "") -> tuple[Path, int]:
        port = port or free_port()
        path = tmp_path / name
        path.write_text(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\nlog_format = "json"\n'
            f'[prometheus]\nlisten = "127.0.0.1:{port}"\n{prometheus}\n{body}'
        )
        return path, port

    return write


@pytest.fixture
def agent_factory() -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def factory(config: Path, port: int, *args: str, **kwargs: object) -> AgentProcess:
        agent = start_agent(config, port, *args, **kwargs)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()
