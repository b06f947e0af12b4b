"""`record()` on the model server's thread, agent up and down, beside whylogs logging the row.

    .venv/bin/python bench/sdk.py              # 200,000 calls each; whylogs 20,000
    .venv/bin/python bench/sdk.py --calls 50000

inferwatch: `agent.client` with 20 features per call, first with no agent listening (every
batch is dropped and counted), then with the real agent running as a subprocess and
receiving. whylogs 1.6 runs in its own virtualenv (bench/.venv-whylogs, `pip install
"whylogs==1.6.*" "numpy<2" "pandas<3"`): `DatasetProfile.track(row=...)` on the same row,
its cheapest in-process call. Each call is timed alone with perf_counter_ns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentproc import running_agent

ROOT = Path(__file__).resolve().parent
WHYLOGS = ROOT / ".venv-whylogs" / "bin" / "python"
ROW = {f"f{k}": k * 0.37 for k in range(18)} | {"country": "DE", "amount": 120}

WHYLOGS_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from whylogs.core import DatasetProfile
row = json.loads(sys.argv[1])
profile = DatasetProfile()
for _ in range(200):
    profile.track(row=row)
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter_ns()
    profile.track(row=row)
    times.append(time.perf_counter_ns() - t)
print(json.dumps(times))
"""


def summary(times_ns: list[int]) -> dict[str, float]:
    ordered = sorted(times_ns)
    return {"median_us": statistics.median(ordered) / 1000,
            "p99_us": ordered[int(len(ordered) * 0.99)] / 1000, "max_us": ordered[-1] / 1000}


def ours(calls: int, socket_path: str) -> dict[str, float]:
    from agent.client import Client  # noqa: PLC0415

    client = Client(socket_path=socket_path, model="bench", model_version="1")
    times = []
    for i in range(calls):
        t = time.perf_counter_ns()
        client.record(f"r{i}", ROW, prediction=i % 2, score=0.7)
        times.append(time.perf_counter_ns() - t)
        if i % 100 == 99:
            time.sleep(0.001)  # a model server does other work between requests (~50k/s)
    client.flush(5.0)
    out = summary(times)
    out.update({k: float(v) for k, v in client.stats().items()})
    return out


def with_agent(calls: int) -> dict[str, float]:
    def plugins(root: Path) -> str:
        return f'[plugins.ingest]\nenabled = true\nsocket_path = "{root / "ingest.sock"}"\n'

    with running_agent(plugins) as (root, _, _):
        return ours(calls, str(root / "ingest.sock"))


def whylogs(calls: int) -> dict[str, float] | None:
    if not WHYLOGS.exists():
        return None
    done = subprocess.run([str(WHYLOGS), "-c", WHYLOGS_SCRIPT, json.dumps(ROW), str(calls)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return summary(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--whylogs-calls", type=int, default=20_000)
    args = parser.parse_args()
    rows = [("inferwatch, agent down", ours(args.calls, "/nonexistent/ingest.sock")),
            ("inferwatch, agent up", with_agent(args.calls))]
    peer = whylogs(args.whylogs_calls)
    print("| caller | median µs | p99 µs | max µs | sent | dropped |\n|---|---|---|---|---|---|")
    for name, found in rows:
        dropped = found.get("dropped_agent_unavailable", 0) + found.get("dropped_queue_full", 0)
        print(f"| {name} | {found['median_us']:.1f} | {found['p99_us']:.1f} | "
              f"{found['max_us']:.0f} | {found.get('sent', 0):,.0f} | {dropped:,.0f} |")
    if peer:
        print(f"| whylogs 1.6 `DatasetProfile.track(row=...)` | {peer['median_us']:.1f} | "
              f"{peer['p99_us']:.1f} | {peer['max_us']:.0f} | — | — |")
        up = rows[1][1]
        ratio = peer["median_us"] / up["median_us"], peer["p99_us"] / up["p99_us"]
        print(f"\nwhylogs / inferwatch (agent up): median {ratio[0]:.0f}x, p99 {ratio[1]:.0f}x")


if __name__ == "__main__":
    main()
