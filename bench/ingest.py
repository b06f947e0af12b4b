"""Sustained ingestion into windows (no monitors attached), through the Unix socket and HTTP.

    .venv/bin/python bench/ingest.py                   # 30 s per path
    .venv/bin/python bench/ingest.py --seconds 10 --paths socket

The real agent runs as a subprocess with the ingest plugin only (windows of 1 minute, the
label join on). A separate sender process replays pre-encoded NDJSON with 20 features per
record as fast as the agent takes it: over the socket as one stream, over HTTP as POSTs of
1,000 records on a keep-alive connection. The rate is read from the agent's own counter
(`inferwatch_samples_received_total`), RSS from /proc every second.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentproc import running_agent

from tests.helpers import free_port, http_get, parse_metrics, value

PYTHON = sys.executable
BATCH = 1000


def records(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        features = {f"f{k}": round(rng.gauss(0, 1), 4) for k in range(18)}
        features |= {"country": rng.choice(["DE", "FR", "US"]), "amount": rng.randint(1, 900)}
        out.append(json.dumps({"model": "fraud", "model_version": "3",
                               "request_id": f"r-{seed}-{i}", "features": features,
                               "prediction": i % 2, "score": rng.random()}).encode())
    return out


def sender(path: str, mode: str, seconds: float, port: int) -> None:
    """Runs in its own process: sends for `seconds`, new request ids each round."""
    deadline = time.monotonic() + seconds
    base = records(BATCH * 10)
    # Rounds are built in a thread while the last is sent (sending lets go of the GIL), so
    # the agent never waits for the sender to make up its next records.
    ready: queue.Queue[list[bytes]] = queue.Queue(maxsize=4)

    def build() -> None:
        for number in itertools.count(1):
            tag = b'"r-%d-' % number
            records = [r.replace(b'"r-1-', tag) for r in base]
            if mode == "socket":
                ready.put([b"\n".join(records) + b"\n"])
            else:
                ready.put([b"\n".join(records[i:i + BATCH]) for i in range(0, len(records), BATCH)])

    threading.Thread(target=build, daemon=True).start()
    if mode == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.connect(path)
            while time.monotonic() < deadline:
                sock.sendall(ready.get()[0])
        return
    conn = http.client.HTTPConnection("127.0.0.1", port)
    while time.monotonic() < deadline:
        for body in ready.get():
            conn.request("POST", "/v1/samples", body, {"Content-Type": "application/x-ndjson"})
            conn.getresponse().read()


def rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(path_kind: str, seconds: float) -> dict[str, float]:
    http_port = free_port()

    def plugins(root: Path) -> str:
        return (f'[plugins.ingest]\nenabled = true\nsocket_path = "{root / "ingest.sock"}"\n'
                f'http_listen = "127.0.0.1:{http_port}"\nwindows = ["1m"]\ninterval = "1s"\n')

    with running_agent(plugins) as (root, port, pid):
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import ingest; ingest.sender({str(root / 'ingest.sock')!r}, {path_kind!r}, "
                f"{seconds}, {http_port})")
        began = time.monotonic()
        send = subprocess.Popen([PYTHON, "-c", code])
        samples, memory = [], []
        while send.poll() is None:
            time.sleep(1.0)
            count = value(parse_metrics(http_get(f"http://127.0.0.1:{port}/metrics")),
                          "inferwatch_samples_received_total", model="fraud") or 0
            samples.append((time.monotonic() - began, count))
            memory.append(rss(pid))
        steady = [s for s in samples if s[0] > 3]  # after warm-up
        rate = ((steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
                if len(steady) > 1 else 0.0)
        return {"rate": rate, "rss_start": memory[min(3, len(memory) - 1)],
                "rss_end": memory[-1], "rss_max": max(memory)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--paths", nargs="+", default=["socket", "http"])
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}")
    print("| path | samples/s (steady) | RSS MiB at 3 s / end / max |\n|---|---|---|")
    for kind in args.paths:
        found = run(kind, args.seconds)
        print(f"| {kind} | {found['rate']:,.0f} | {found['rss_start']:.1f} / "
              f"{found['rss_end']:.1f} / {found['rss_max']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
