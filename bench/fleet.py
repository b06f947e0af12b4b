"""The fleet consumer's cost per scrape and its memory: N hosts' window profiles accepted,
then /metrics collected (each stream's latest window merged, drift and quality computed).

    .venv/bin/python bench/fleet.py --hosts 500 --features 20 50 --windows 1 24
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from plugins.drift import fleet, profile  # noqa: E402


def _consumer() -> object:
    spec = importlib.util.spec_from_file_location("consumer", ROOT / "contrib/fleet/consumer.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _columns(rng: np.random.Generator, features: int, n: int) -> dict[str, np.ndarray]:
    numeric = features * 3 // 4
    cols: dict[str, np.ndarray] = {f"x{i}": rng.normal(0, 1, n) for i in range(numeric)}
    for i in range(features - numeric):
        cols[f"c{i}"] = rng.choice(np.array([f"v{j}" for j in range(20)], dtype=object), n)
    return cols


def run(hosts: int, features: int, windows: int) -> None:
    consumer = _consumer()
    rng = np.random.default_rng(0)
    ref = profile.build(_columns(rng, features, 5000), model="m", model_version="1")
    payloads = []
    for w in range(windows):
        for h in range(hosts):
            built = fleet.build(_columns(rng, features, 500), ref, host=f"h{h}", window="1h",
                                end=3600.0 * (w + 1), labels=[0, 1] * 50,
                                predictions=[1, 1] * 50)
            payloads.append((f"h{h}", fleet.encode(built)))
    size = sum(len(p) for _, p in payloads) / len(payloads)
    gc.collect()
    tracemalloc.start()
    state = consumer.Fleet([ref])  # type: ignore[attr-defined]
    began = time.perf_counter()
    for host, payload in payloads:
        state.accept(host, payload)
    accept = (time.perf_counter() - began) / len(payloads)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    registry = CollectorRegistry()
    registry.register(consumer.FleetMetrics(state))  # type: ignore[attr-defined]
    began = time.perf_counter()
    generate_latest(registry)
    scrape = time.perf_counter() - began
    print(f"| {hosts} | {features} | {windows} | {size / 1024:.1f} | {accept * 1e3:.2f} | "
          f"{scrape:.2f} | {held / 2**20:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--features", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 24])
    args = parser.parse_args()
    print("| hosts | features | windows kept | profile KiB | accept ms | scrape s | held MiB |")
    print("|---|---|---|---|---|---|---|")
    for features in args.features:
        for windows in args.windows:
            run(args.hosts, features, windows)


if __name__ == "__main__":
    main()
