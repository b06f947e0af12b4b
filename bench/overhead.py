"""Agent overhead beside prometheus-node-exporter under the same scraping.

Both exporters run at once; one thread per exporter scrapes it at a fixed rate over a
keep-alive connection with Prometheus' headers (gzip; OpenMetrics in the `openmetrics`
phase). CPU comes from /proc/<pid>/stat, RSS from /proc/<pid>/status.

    .venv/bin/python bench/overhead.py                     # 3 phases x 60 s
    .venv/bin/python bench/overhead.py --seconds 600 --phases text   # the 10-minute soak
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
TEXT = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
OPENMETRICS = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
               "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    latencies: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    errors: int = 0
    body_bytes: int = 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"port {port} never answered {path}")


def start_agent(workdir: Path, interval: str) -> Target:
    port = free_port()
    config = (ROOT / "agent.toml").read_text()
    config = config.replace('listen = "127.0.0.1:9879"', f'listen = "127.0.0.1:{port}"')
    config = config.replace('interval = "10s"', f'interval = "{interval}"')
    config = config.replace('timeout = "5s"', 'timeout = "1s"' if interval == "1s" else
                            'timeout = "5s"')
    config = config.replace("[agent]\n", f'[agent]\nstate_dir = "{workdir / "state"}"\n', 1)
    path = workdir / "agent.toml"
    path.write_text(config)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_http(port, "/-/ready")
    return Target("inferwatch", port, proc)


def start_node_exporter() -> Target:
    port = free_port()
    proc = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}",
                             "--no-collector.systemd"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(port, "/metrics")
    return Target("node_exporter", port, proc)


def scrape_loop(port: int, pid: int, accept: str, seconds: float, period: float
                ) -> tuple[list[float], list[int], int, int]:
    """Scrape at a fixed rate; (latencies, RSS samples, errors, last body size)."""
    latencies: list[float] = []
    rss: list[int] = []
    errors = size = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Accept": accept, "Accept-Encoding": "gzip",
               "X-Prometheus-Scrape-Timeout-Seconds": "1"}
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        began = time.perf_counter()
        try:
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            body = response.read()
            errors += response.status != 200
            size = len(body)
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        latencies.append(time.perf_counter() - began)
        if n % 10 == 0:
            rss.append(rss_bytes(pid))
        n += 1
        time.sleep(max(0.0, start + n * period - time.monotonic()))
    conn.close()
    return latencies, rss, errors, size


def run_phase(name: str, accept: str, interval: str, seconds: float, period: float
              ) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        targets = [start_agent(Path(tmp), interval), start_node_exporter()]
        try:
            time.sleep(2)  # let start-up CPU (imports, first collection) pass
            cpu0 = {t.name: t.cpu_seconds() for t in targets}
            wall0 = time.monotonic()
            # One scraper process per exporter: the client's own GIL must not time the other.
            with multiprocessing.Pool(len(targets)) as pool:
                results = pool.starmap(scrape_loop, [(t.port, t.proc.pid, accept, seconds, period)
                                                     for t in targets])
            for t, (latencies, rss, errors, size) in zip(targets, results, strict=True):
                t.latencies, t.rss, t.errors, t.body_bytes = latencies, rss, errors, size
            wall = time.monotonic() - wall0
            return [summarise(name, interval, t, t.cpu_seconds() - cpu0[t.name], wall)
                    for t in targets]
        finally:
            for t in targets:
                t.proc.terminate()
                t.proc.wait(15)


def summarise(phase: str, interval: str, t: Target, cpu: float, wall: float
              ) -> dict[str, object]:
    lat = sorted(t.latencies)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    first, last = t.rss[0], t.rss[-1]
    return {
        "phase": phase, "exporter": t.name,
        "agent_interval": interval if t.name == "inferwatch" else "per scrape",
        "scrapes": len(lat), "errors": t.errors, "body_bytes_gzip": t.body_bytes,
        "cpu_ms_per_scrape": round(1000 * cpu / len(lat), 2),
        "cpu_percent": round(100 * cpu / wall, 2),
        "rss_mib_first": round(first / 2**20, 1), "rss_mib_last": round(last / 2**20, 1),
        "rss_mib_max": round(max(t.rss) / 2**20, 1),
        "rss_growth_mib": round((last - first) / 2**20, 2),
        "latency_ms_p50": round(1000 * q[49], 2), "latency_ms_p99": round(1000 * q[98], 2),
    }


PHASES = {
    "text": (TEXT, "10s"),
    "openmetrics": (OPENMETRICS, "10s"),
    "text-collect-every-second": (TEXT, "1s"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for phase in args.phases:
        accept, interval = PHASES[phase]
        rows += run_phase(phase, accept, interval, args.seconds, args.period)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
