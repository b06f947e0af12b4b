"""CPU cost of the agent's MQTT path, which the machine's load moves far less than msg/s.

    .venv/bin/python bench/mqtt_cpu.py [ROOT] [--events 20000] [--runs 2]

Loads `ROOT/bench/mqtt.py` (default: this checkout) with ROOT first on the import path, so
alternating it with an unpacked older commit (`git archive BASE | tar -x -C /tmp/base`)
compares the two on the same loaded machine: CPU seconds of the whole process (every
thread: the event loop, the outbox worker, paho) per run of `--events` events at 100 in
flight through a real mosquitto.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("bench_mqtt", root / "bench" / "mqtt.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no bench/mqtt.py under {root}")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with tempfile.TemporaryDirectory() as tmp:
        broker = bench.Broker(Path(tmp))
        broker.start()
        try:
            for run in range(args.runs):
                began = time.process_time()
                rate = asyncio.run(bench.agent_rate(Path(tmp) / f"a{run}", broker.port,
                                                    args.events, 100, "3.1.1"))
                cpu = time.process_time() - began
                print(f"{root.name}: {cpu:.2f} CPU s for {args.events} events "
                      f"({1e6 * cpu / args.events:.0f} µs each), {rate:.0f} msg/s")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
