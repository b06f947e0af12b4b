"""How long `inferwatch audit` takes: the whole CLI, and beyond `inferwatch --version`.

    .venv/bin/python bench/audit.py            # 5 runs, 2 fake GPUs, an unreachable endpoint

The config enables the fake GPU backend (2 GPUs), ingest, mqtt pointing at a closed port
(so the endpoint probe fails fast) and the default 32 MiB storage probe.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.nvidia.fake import scenario  # noqa: E402
from tests.helpers import free_port  # noqa: E402


def main(runs: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="iw-audit-") as folder:
        root = Path(folder)
        (root / "gpu.json").write_text(json.dumps(scenario(2)))
        config = root / "agent.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{root / "state"}"\n[prometheus]\n'
            f'listen = "127.0.0.1:{free_port()}"\n[plugins.nvidia]\nenabled = true\n'
            f'backend = "fake"\nfake_scenario = "{root / "gpu.json"}"\n'
            f'[plugins.ingest]\nenabled = true\n[plugins.mqtt]\nenabled = true\n'
            f'port = {free_port()}\n')
        walls, inner, checks = [], [], 0
        for _ in range(runs):
            began = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "agent", "audit", "-c", str(config),
                                  "--format", "json"], capture_output=True, text=True,
                                 cwd=ROOT, check=False)
            walls.append(time.monotonic() - began)
            checks = len(json.loads(out.stdout)["checks"])
            began = time.monotonic()
            subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True,
                           cwd=ROOT, check=False)
            inner.append(walls[-1] - (time.monotonic() - began))
    print(json.dumps({"runs": runs, "checks": checks,
                      "cli_seconds_median": round(statistics.median(walls), 2),
                      "cli_seconds_max": round(max(walls), 2),
                      "beyond_startup_seconds_median": round(statistics.median(inner), 2)}))


if __name__ == "__main__":
    main()
