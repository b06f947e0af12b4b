"""What the shipped unit's limits assume of the process: no numpy unless a plugin that needs
it is enabled, one BLAS thread, and a stack dump when the watchdog aborts the agent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.process import BLAS_THREAD_VARIABLES
from tests.conftest import ConfigWriter
from tests.helpers import agent_env

pytestmark = pytest.mark.integration


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_default_config_never_loads_numpy_sqlite_or_aiohttp(write_config: ConfigWriter,
                                                        agent_factory) -> None:
    """Plugin discovery imported numpy for plugins that are off (+12 MiB of RSS), and the
    exporter aiohttp (+9 MiB)."""
    config, port = write_config("")  # defaults: the host plugin only
    agent = agent_factory(config, port)
    agent.scrape()
    maps = _mapped(agent.proc.pid)
    assert "_multiarray_umath" not in maps
    assert "_sqlite3" not in maps  # the outbox's, loaded only with mqtt enabled
    assert "aiohttp" not in maps  # /metrics is served on asyncio streams (agent.httpd)


def test_the_check_sees_numpy_when_a_plugin_needs_it(write_config: ConfigWriter,
                                                     agent_factory, tmp_path: Path) -> None:
    config, port = write_config(f'[plugins.ingest]\nenabled = true\n'
                                f'socket_path = "{tmp_path / "ingest.sock"}"\n')
    agent = agent_factory(config, port)
    assert "_multiarray_umath" in _mapped(agent.proc.pid)


PROBE = """
import json, sys
from agent import process
process.prepare()
import numpy, threadpoolctl
print(json.dumps([p["num_threads"] for p in threadpoolctl.threadpool_info()]))
"""


def _blas_threads(env: dict[str, str]) -> list[int]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, check=True, timeout=60).stdout
    return list(json.loads(out))


def test_numpy_gets_one_blas_thread() -> None:
    """OpenBLAS started a thread per core at import: 64 on a 64-core host, TasksMax=64."""
    env = {k: v for k, v in agent_env().items() if k not in BLAS_THREAD_VARIABLES}
    pools = _blas_threads(env)
    assert pools  # numpy's BLAS was found
    assert pools == [1] * len(pools)


def test_an_operators_blas_setting_wins() -> None:
    env = {**agent_env(), "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    assert set(_blas_threads(env)) == {2}


def test_a_watchdog_abort_prints_every_threads_stack(write_config: ConfigWriter,
                                                     agent_factory) -> None:
    config, port = write_config("")
    agent = agent_factory(config, port)
    agent.signal(signal.SIGABRT)  # what systemd sends when WatchdogSec passes
    agent.proc.wait(15)
    log = agent.log()
    assert "Fatal Python error: Aborted" in log
    assert "Current thread" in log
    assert "asyncio/base_events.py" in log  # the main thread, in its event loop


async def test_the_default_executor_is_bounded() -> None:
    """asyncio's default is min(32, cores + 4) threads: it grew with the host past TasksMax."""
    import asyncio  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from agent.process import DEFAULT_EXECUTOR_THREADS, bound_default_executor  # noqa: PLC0415

    bound_default_executor(asyncio.get_running_loop())
    gate = threading.Barrier(DEFAULT_EXECUTOR_THREADS, timeout=10)  # fills only if all run
    names: set[str] = set()

    def work() -> None:  # a bigger pool would start a thread for each of the 3N calls at once
        names.add(threading.current_thread().name)
        gate.wait()

    await asyncio.gather(*(asyncio.to_thread(work) for _ in range(3 * DEFAULT_EXECUTOR_THREADS)))
    assert len(names) == DEFAULT_EXECUTOR_THREADS
    assert all(name.startswith("inferwatch-pool") for name in names)
