"""From an alert event to the alert accepted by a real Alertmanager: latency percentiles.

    .venv/bin/python bench/alertmanager.py                 # 300 alerts, one every 20 ms
    .venv/bin/python bench/alertmanager.py --alerts 1000 --every 0.005

The agent path is the real one, in-process, with the default settings: the bus -> the
Alertmanager sink (held set written to the state dir, fsync) -> the sender -> `POST
/api/v2/alerts` on Debian's Alertmanager; the time is taken when Alertmanager answered 200
(the sender records the acknowledgement). At the end every alert is checked to be listed by
`GET /api/v2/alerts`. Each alert is a new episode (a firing, not a renewal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bus import EventBus
from agent.config import build_config
from agent.metrics import PluginMetrics
from agent.selfmetrics import SelfMetrics
from agent.supervisor import Supervised
from plugins.alertmanager.config import AlertmanagerConfig
from plugins.alertmanager.held import HeldAlerts, episode
from plugins.alertmanager.sender import Sender
from plugins.alertmanager.sink import AlertmanagerSink, AlertStore
from tests.fixtures.iwtest.alerts import alert_event
from tests.helpers import free_port, http_get


def start_alertmanager(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (folder / "am.yml").write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    proc = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={folder / 'am.yml'}",
         f"--storage.path={folder / 'am'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            http_get(f"{url}/-/ready", timeout=1)
        except OSError:
            time.sleep(0.05)
        else:
            return proc, url
    raise SystemExit("alertmanager did not start")


async def measure(url: str, state: Path, count: int, every: float,
                  flood: int = 0) -> list[float]:
    config = build_config({"plugins": {"alertmanager": {"enabled": True, "urls": [url]}}},
                          {"alertmanager": AlertmanagerConfig}).plugins["alertmanager"]
    assert isinstance(config, AlertmanagerConfig)
    metrics = SelfMetrics()
    bus = EventBus(10_000, metrics)
    bus_task = asyncio.create_task(bus.run())
    held = HeldAlerts(state / "held.db", [url], config.max_alerts)
    store = AlertStore(held)
    sups = [Supervised("alertmanager", c, config, metrics=metrics,
                       store=PluginMetrics("alertmanager", 100), bus=bus, host_id="bench")
            for c in (AlertmanagerSink(config, store, "alertmanager"),
                      Sender(config, store, url, 0))]
    for sup in sups:
        sup.launch()
        await sup.started.wait()
    latencies = []
    if flood:  # all at once: how long until the last is accepted
        events = [alert_event(f"Flood{i}", severity="critical", host="bench")
                  for i in range(flood)]
        began = time.perf_counter()
        for event in events:
            bus.emit(event)
        last = episode(events[-1])
        while held.state.acked.get(url, {}).get(last) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        print(f"flood of {flood} alerts: all accepted after "
              f"{time.perf_counter() - began:.2f} s")
    for i in range(count):
        event = alert_event(f"Bench{i}", severity="critical", host="bench")
        key, began = episode(event), time.perf_counter()
        bus.emit(event)
        # Polled every 0.5 ms: the sink and sender run unchanged, with no hook for the bench.
        while held.state.acked.get(url, {}).get(key) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.0005)
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(every)
    for sup in sups:
        await sup.stop(5)
    bus_task.cancel()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--every", type=float, default=0.02, help="seconds between alerts")
    parser.add_argument("--flood", type=int, default=0,
                        help="first emit this many alerts at once (a storm), then measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iw-bench-am-") as tmp:
        folder = Path(tmp)
        proc, url = start_alertmanager(folder)
        try:
            lat = asyncio.run(measure(url, folder, args.alerts, args.every, args.flood))
            listed = {a["labels"]["alertname"] for a in json.loads(
                urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5).read())}  # noqa: S310
        finally:
            proc.terminate()
            proc.wait(10)
    wanted = {f"Bench{i}" for i in range(args.alerts)} | {f"Flood{i}" for i in range(args.flood)}
    missing = len(wanted - listed)
    ms = sorted(x * 1000 for x in lat)
    cut = statistics.quantiles(ms, n=100)
    print(f"alerts={len(ms)} p50={cut[49]:.1f} ms p90={cut[89]:.1f} ms p99={cut[98]:.1f} ms "
          f"max={ms[-1]:.1f} ms; not listed by Alertmanager: {missing}")


if __name__ == "__main__":
    main()
