"""Recorded samples and labels for the replay benchmark: 20 features, labels 30 s later.

    python3 bench/make_replay_data.py 1000000 [/tmp/replay]
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    prefix = sys.argv[2] if len(sys.argv) > 2 else "/tmp/replay"  # noqa: S108 - bench data
    rng = random.Random(1)
    t0 = 1_800_000_000
    with Path(f"{prefix}-samples.ndjson").open("w") as samples, \
            Path(f"{prefix}-labels.ndjson").open("w") as labels:
        for i in range(count):
            ts = t0 + i * 0.01
            x = rng.gauss(0, 1)
            p = 1 / (1 + math.exp(-2 * x))
            features = {f"f{k}": rng.random() for k in range(18)}
            features |= {"x": x, "c": rng.choice("abc")}
            samples.write(json.dumps({
                "model": "fraud", "model_version": "3", "request_id": f"r{i}", "ts": ts,
                "features": features, "prediction": int(p > 0.5), "score": p}) + "\n")
            if i % 2 == 0:
                labels.write(json.dumps({"model": "fraud", "request_id": f"r{i}",
                                         "label": int(rng.random() < p), "ts": ts + 30}) + "\n")


if __name__ == "__main__":
    main()
