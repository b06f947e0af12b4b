"""The real agent as a subprocess for a benchmark: a private config, waited for until ready."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import free_port, http_get

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def running_agent(plugins: Callable[[Path], str]) -> Iterator[tuple[Path, int, int]]:
    """(folder, metrics port, pid); `plugins(folder)` gives the plugin sections (host off)."""
    with tempfile.TemporaryDirectory(prefix="iw-bench-") as folder:
        root, port = Path(folder), free_port()
        config = root / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{root / "state"}"\nlog_level = "warning"\n'
            f'[prometheus]\nlisten = "127.0.0.1:{port}"\n[plugins.host]\nenabled = false\n'
            + plugins(root))
        agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                                 cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    http_get(f"http://127.0.0.1:{port}/-/ready")
                    break
                except OSError:
                    time.sleep(0.1)
            yield root, port, agent.pid
        finally:
            agent.terminate()
            agent.wait(20)
