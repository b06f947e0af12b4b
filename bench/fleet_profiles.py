"""Fleet window profiles: their size on the wire, the agent's cost to build one, and the
consumer's cost to merge a fleet's and compute drift and quality (docs/fleet.md).

    .venv/bin/python bench/fleet_profiles.py [--hosts 500] [--rows 5000]
"""

from __future__ import annotations

import argparse
import gzip
import time

import numpy as np

from plugins.drift import fleet, profile


def columns(rng: np.random.Generator, rows: int, features: int) -> dict[str, np.ndarray]:
    categories = np.array(list("abcdefgh"), dtype=object)
    out = {f"f{i}": rng.normal(size=rows) for i in range(features - 5)}
    return out | {f"c{i}": rng.choice(categories, rows) for i in range(5)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, args.rows).tolist()
    predictions = rng.integers(0, 2, args.rows).tolist()
    print("| features | profile bytes | gzipped | build (ms) | merge + drift + quality, "
          f"{args.hosts} hosts (ms) |")
    print("|---|---|---|---|---|")
    for count in (20, 50):
        data = columns(rng, args.rows, count)
        ref = profile.build(data, model="m")
        began = time.perf_counter()
        one = fleet.build(data, ref, host="h", window="1h", end=1.0, labels=labels,
                          predictions=predictions)
        build_ms = (time.perf_counter() - began) * 1000
        wire = fleet.encode(one)
        hosts = [fleet.build(data, ref, host=f"h{i}", window="1h", end=1.0, labels=labels,
                             predictions=predictions) for i in range(args.hosts)]
        began = time.perf_counter()
        merged = fleet.merge(hosts)
        fleet.drift(merged, ref)
        fleet.quality(merged)
        merge_ms = (time.perf_counter() - began) * 1000
        print(f"| {count} | {len(wire):,} | {len(gzip.compress(wire)):,} | {build_ms:.1f} | "
              f"{merge_ms:.0f} |")


if __name__ == "__main__":
    main()
