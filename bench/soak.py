"""Soak: every plugin on under synthetic load; does the agent stay flat?

The real agent runs as a subprocess with host, nvidia (fake backend), ingest (socket and
HTTP), quality, drift, mqtt (to a real mosquitto), eventlog and the scheduled audit. This
process feeds it: samples and their labels through the client SDK, XIDs appended to the
fake GPU scenario, scrapes of /metrics; the broker is stopped for the middle fifth of the
run, so the outbox fills and drains. Every `--every` seconds it records the agent's CPU,
RSS, open descriptors, threads and outbox depth; the summary fits RSS growth after warm-up.

    nice -n 19 .venv/bin/python bench/soak.py --minutes 60 --out /tmp/soak.jsonl
    .venv/bin/python bench/soak.py --minutes 1.5 --check      # the `make soak` bounds

What grows: `--heap DIR` adds glibc and SQLite heap figures at each reading, `--trace DIR`
tracemalloc snapshots and thread stacks (bench/tracehook.py; the agent is slower under it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.client import Client  # noqa: E402
from plugins.nvidia.fake import scenario  # noqa: E402
from tests.helpers import free_port, http_get, parse_metrics  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
OUTBOX_MAX = 64 * MiB
OUTAGE = (0.4, 0.6)  # the broker is stopped for this part of the run: the outbox must fill
TRACE_AT = (0.2, 0.39, 0.59, 0.8, 0.99)  # with --trace: memory snapshots at these fractions


def config(root: Path, port: int, broker: int | None, gpu: Path) -> str:
    mqtt = (f'[plugins.mqtt]\nenabled = true\nport = {broker}\noutbox_max_bytes = {OUTBOX_MAX}\n'
            if broker else "[plugins.mqtt]\nenabled = false\n")
    return f"""
[agent]
state_dir = "{root / 'state'}"
log_level = "warning"
log_format = "json"
[prometheus]
listen = "127.0.0.1:{port}"
[plugins.host]
interval = "5s"
[plugins.nvidia]
enabled = true
backend = "fake"
fake_scenario = "{gpu}"
interval = "2s"
[plugins.ingest]
enabled = true
socket_path = "{root / 'ingest.sock'}"
http_listen = "127.0.0.1:{free_port()}"
windows = ["1m"]
label_wait = "30s"
[plugins.quality]
enabled = true
[plugins.drift]
enabled = true
[plugins.eventlog]
enabled = true
[plugins.audit]
enabled = true
interval = "60s"
probe_bytes = 1048576
probe_seconds = 1
{mqtt}"""


class Broker:
    """A real mosquitto on a free loopback port, stopped and restarted for the outage."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def broker(root: Path) -> Iterator[Broker | None]:
    if not shutil.which("mosquitto"):
        yield None
        return
    running = Broker(root)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def proc_stats(pid: int) -> dict[str, float]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"cpu_s": (int(stat[11]) + int(stat[12])) / TICK,
            "rss": int(status["VmRSS"].split()[0]) * 1024,
            "threads": int(status["Threads"]), "fds": len(list(Path(f"/proc/{pid}/fd").iterdir()))}


class Load:
    """Samples with labels a second later, an XID every 5 s, a scrape every 2 s."""

    def __init__(self, socket_path: Path, gpu: Path, port: int, rate: float) -> None:
        self.socket_path, self.gpu, self.port, self.rate = socket_path, gpu, port, rate
        self.stop = threading.Event()
        self.sent = self.xids = self.scrapes = self.scrape_errors = 0
        self.metrics: dict[Any, float] = {}

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=t, daemon=True)
                   for t in (self._samples, self._xids, self._scrapes)]
        for thread in threads:
            thread.start()
        return threads

    def _samples(self) -> None:
        client = Client(socket_path=str(self.socket_path), model="fraud", model_version="1")
        rng, pending = random.Random(7), []
        while not self.stop.wait(1 / self.rate):
            drift = 2.0 if (self.sent // 5000) % 2 else 0.0
            x = rng.gauss(drift, 1.0)
            rid = f"r-{self.sent}"
            client.record(rid, {"amount": x, "country": rng.choice("ABCD")}, int(x > 0.5),
                          scores={"0": 0.4, "1": 0.6})
            pending.append((time.monotonic() + 1.0, rid, int(rng.random() < 0.5)))
            while pending and pending[0][0] <= time.monotonic():
                _, rid, label = pending.pop(0)
                client.label(rid, label)
            self.sent += 1
        client.flush(2.0)

    def _xids(self) -> None:
        data = json.loads(self.gpu.read_text())
        while not self.stop.wait(5):
            self.xids += 1
            data["xids"].append({"gpu": self.xids % 2, "xid": random.choice([13, 31, 43, 79]),
                                 "seq": self.xids})
            data["xids"] = data["xids"][-100:]
            tmp = self.gpu.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.gpu)

    def _scrapes(self) -> None:
        while not self.stop.wait(2):
            try:
                self.metrics = parse_metrics(http_get(f"http://127.0.0.1:{self.port}/metrics"))
                self.scrapes += 1
            except OSError:
                self.scrape_errors += 1


def metric_sum(metrics: dict[Any, float], name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


def agent_command(config_path: Path, trace: Path | None, heap: Path | None) -> list[str]:
    """The agent's command line; with `trace` or `heap`, under bench/tracehook.py (and, for
    `trace`, tracemalloc)."""
    if trace is None and heap is None:
        return [sys.executable, "-m", "agent", "run", "-c", str(config_path)]
    tracing = ["-X", "tracemalloc=12"] if trace else []
    return [sys.executable, *tracing, str(ROOT / "bench" / "tracehook.py"),
            str(trace or heap), "run", "-c", str(config_path)]


def soak(minutes: float, every: float, rate: float, out: Path | None, *,
         trace: Path | None = None, heap: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="iw-soak-") as folder:
        root = Path(folder)
        gpu = root / "gpu.json"
        gpu.write_text(json.dumps(scenario(2)))
        with broker(root) as mqtt:
            port = free_port()
            (root / "agent.toml").write_text(config(root, port, mqtt and mqtt.port, gpu))
            agent = subprocess.Popen(
                agent_command(root / "agent.toml", trace, heap), cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=(root / "agent.log").open("wb"))
            try:
                _wait_ready(port, agent)
                rows = _run(agent.pid, Load(root / "ingest.sock", gpu, port, rate),
                            minutes=minutes, every=every, out=out, mqtt=mqtt,
                            trace=trace is not None, heap=bool(trace or heap))
            finally:
                agent.send_signal(signal.SIGTERM)
                agent.wait(30)
            return summarise(rows, minutes, rate, mqtt is not None)


def _wait_ready(port: int, agent: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise SystemExit(f"agent exited {agent.returncode}")
        try:
            if http_get(f"http://127.0.0.1:{port}/-/ready") == "OK\n":
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("agent not ready in 60 s")


def _run(pid: int, load: Load, *, minutes: float, every: float, out: Path | None,
         mqtt: Broker | None, trace: bool = False,
         heap: bool = False) -> list[dict[str, float]]:
    """Readings every `every` s; the broker is away for the middle fifth (OUTAGE) of the run."""
    load.start()
    began, rows, marks = time.monotonic(), [], list(TRACE_AT) if trace else []
    sink = out.open("w") if out else None
    try:
        while (elapsed := time.monotonic() - began) < minutes * 60:
            time.sleep(min(every, max(0.0, minutes * 60 - elapsed)))
            progress = (time.monotonic() - began) / (minutes * 60)
            if marks and (progress >= marks[0] or progress + every / (minutes * 60) > 1):
                marks.pop(0)
                os.kill(pid, signal.SIGUSR2)  # tracehook: a tracemalloc snapshot now
            if heap:
                os.kill(pid, signal.SIGUSR1)  # tracehook: one line of heap figures
            _outage(mqtt, progress)
            row = {"t": round(time.monotonic() - began, 1), **proc_stats(pid),
                   "broker_up": int(mqtt is not None and mqtt.proc is not None),
                   "sent": load.sent, "xids": load.xids, "scrapes": load.scrapes,
                   "scrape_errors": load.scrape_errors,
                   "outbox_depth": metric_sum(load.metrics, "inferwatch_outbox_depth"),
                   "outbox_bytes": metric_sum(load.metrics, "inferwatch_outbox_bytes"),
                   "events": metric_sum(load.metrics, "inferwatch_events_emitted_total"),
                   "received": metric_sum(load.metrics, "inferwatch_samples_received_total")}
            rows.append(row)
            if sink:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
    finally:
        load.stop.set()
        if sink:
            sink.close()
    return rows


def _outage(mqtt: Broker | None, progress: float) -> None:
    if mqtt is None:
        return
    inside = OUTAGE[0] <= progress < OUTAGE[1]
    if inside and mqtt.proc is not None:
        mqtt.stop()
    elif not inside and mqtt.proc is None:
        mqtt.start()


def slope_per_hour(rows: list[dict[str, float]], key: str) -> float:
    """Least-squares slope of `key` against time, per hour."""
    n = len(rows)
    if n < 2:
        return 0.0
    mean_t = sum(r["t"] for r in rows) / n
    mean_v = sum(r[key] for r in rows) / n
    den = sum((r["t"] - mean_t) ** 2 for r in rows)
    num = sum((r["t"] - mean_t) * (r[key] - mean_v) for r in rows)
    return num / den * 3600 if den else 0.0


def summarise(rows: list[dict[str, float]], minutes: float, rate: float,
              mqtt: bool) -> dict[str, Any]:
    if len(rows) < 3:
        raise SystemExit("too few samples: run longer")
    warm = rows[max(1, len(rows) // 5):]  # the first fifth is warm-up (windows fill, caches)
    span = rows[-1]["t"] - rows[0]["t"]
    return {
        "minutes": round(rows[-1]["t"] / 60, 1), "rate": rate, "mqtt": mqtt,
        "cpu_percent": round((rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / span * 100, 2),
        "rss_mib_first_last": [round(warm[0]["rss"] / MiB, 1), round(rows[-1]["rss"] / MiB, 1)],
        "rss_mib_per_hour_after_warmup": round(slope_per_hour(warm, "rss") / MiB, 2),
        "fds_min_max": [min(r["fds"] for r in warm), max(r["fds"] for r in warm)],
        "threads_min_max": [min(r["threads"] for r in warm), max(r["threads"] for r in warm)],
        "outbox_depth_max": max(r["outbox_depth"] for r in rows),
        "outbox_depth_end": rows[-1]["outbox_depth"],
        "outbox_bytes_max": max(r["outbox_bytes"] for r in rows),
        "samples_sent": rows[-1]["sent"], "samples_received": rows[-1]["received"],
        "events": rows[-1]["events"], "xids": rows[-1]["xids"],
        "scrapes": rows[-1]["scrapes"], "scrape_errors": rows[-1]["scrape_errors"],
    }


def problems(summary: dict[str, Any]) -> list[str]:
    """The generous bounds `make soak` enforces on a short, loaded-machine run."""
    found = []
    first, last = summary["rss_mib_first_last"]
    if last - first > 20:
        found.append(f"RSS grew {last - first:.1f} MiB after warm-up")
    for key in ("fds_min_max", "threads_min_max"):
        low, high = summary[key]
        if high - low > 10:
            found.append(f"{key}: {low} -> {high}")
    if summary["outbox_bytes_max"] > OUTBOX_MAX:
        found.append(f"outbox over its bound: {summary['outbox_bytes_max']}")
    if summary["mqtt"] and summary["outbox_depth_end"] > max(10, summary["outbox_depth_max"] / 2):
        found.append(f"the outbox did not drain after the outage: {summary['outbox_depth_end']}")
    if summary["scrape_errors"]:
        found.append(f"{summary['scrape_errors']} failed scrapes")
    if summary["samples_received"] < summary["samples_sent"] * 0.5:
        found.append("the agent took under half the samples sent")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between readings")
    parser.add_argument("--rate", type=float, default=50.0, help="samples per second")
    parser.add_argument("--out", type=Path, default=None, help="every reading, as JSON lines")
    parser.add_argument("--check", action="store_true", help="exit 1 outside the bounds")
    parser.add_argument("--trace", type=Path, default=None,
                        help="run the agent under tracemalloc; snapshots land in this folder")
    parser.add_argument("--heap", type=Path, default=None,
                        help="glibc and SQLite heap figures each reading, into this folder")
    args = parser.parse_args()
    summary = soak(args.minutes, args.every, args.rate, args.out, trace=args.trace,
                   heap=args.heap)
    print(json.dumps(summary, indent=2))
    if args.check and (found := problems(summary)):
        print("\n".join(f"soak: {p}" for p in found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
