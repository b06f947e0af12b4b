"""Varied recorded streams for byte-for-byte replay comparisons between two trees
(bench/replay_same.sh): `python bench/replay_streams.py OUTDIR` writes <name>.samples.ndjson
and <name>.labels.ndjson for `multi` (three string classes with score maps, groups, two
versions, a categorical feature whose levels grow, nulls and absent features, labels from
30 s to 30 days late, drift from the middle on), `reg` (regression with numeric strings,
an integer beyond any float and non-numeric predictions) and `bin` (yes/no score maps, 60
numeric and 30 categorical features, inf and -1e300, some labels 200 days late)."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

T0 = 1_800_000_000


def write(out: Path, name: str, samples: list[dict[str, Any]], labels: list[dict[str, Any]]
          ) -> None:
    labels.sort(key=lambda label: label["ts"])
    (out / f"{name}.samples.ndjson").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (out / f"{name}.labels.ndjson").write_text("".join(json.dumps(x) + "\n" for x in labels))


def multi(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samples, labels, names = [], [], ["lo", "mid", "hi"]
    for i in range(6000):
        ts, drift = T0 + i * 40, i > 3500
        x = rng.gauss(1.0 if drift else 0.0, 1)
        raw = [math.exp(x * k) for k in (-1, 0, 1)]
        p = [r / sum(raw) for r in raw]
        pred = max(range(3), key=lambda k: p[k])
        features: dict[str, Any] = {"x": x, "c": rng.choice("abcdefg" if drift else "abcde"),
                                    "y": rng.random()}
        if i % 17 == 0:
            features["x"] = None
        if i % 29 == 0:
            features.pop("y")
        if i % 101 == 0:
            features["z"] = "str"
        samples.append({"model": "multi", "model_version": "1" if i < 4000 else "2",
                        "request_id": f"m{i}", "ts": ts, "features": features,
                        "prediction": names[pred], "scores": dict(zip(names, p, strict=True)),
                        "group": rng.choice(["g1", "g2", "g3"])})
        if i % 3:
            delay = 30 if i % 5 else rng.choice([3600, 86400 * 3, 86400 * 30])
            label = names[min(2, max(0, pred + rng.choice([-1, 0, 0, 0, 1])))]
            labels.append({"model": "multi", "request_id": f"m{i}", "label": label,
                           "ts": ts + delay})
    return samples, labels


def reg(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samples, labels = [], []
    for i in range(5000):
        ts, a = T0 + i * 60, rng.random() * 10
        features = {"a": a, "b": str(rng.randint(0, 9)) if i % 7 == 0 else rng.randint(0, 9),
                    "h": 10 ** 400 if i % 211 == 0 else rng.gauss(0, 1)}
        samples.append({"model": "reg", "model_version": "1", "request_id": f"q{i}", "ts": ts,
                        "features": features,
                        "prediction": a * 2 + rng.gauss(0, 1) if i % 50 else "bad"})
        if i % 2 == 0:
            labels.append({"model": "reg", "request_id": f"q{i}", "label": a * 2, "ts": ts + 120})
    return samples, labels


def binary(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    samples, labels = [], []
    for i in range(4000):
        ts, x = T0 + i * 90, rng.gauss(0, 1)
        p = 1 / (1 + math.exp(-x))
        features: dict[str, Any] = {f"n{k}": rng.random() for k in range(60)}
        features |= {f"k{k}": rng.choice(["u", "v", "w", None]) for k in range(30)}
        if i % 13 == 0:
            features["n3"] = math.inf if i % 2 else -1e300
        features["x"] = x
        samples.append({"model": "bin", "model_version": "7", "request_id": f"b{i}", "ts": ts,
                        "features": features, "prediction": "yes" if p > 0.5 else "no",
                        "scores": {"yes": p, "no": 1 - p}})
        if i % 4 != 3:
            labels.append({"model": "bin", "request_id": f"b{i}",
                           "label": "yes" if rng.random() < p else "no",
                           "ts": ts + (10 if i % 9 else 86400 * 200)})
    return samples, labels


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, make in (("multi", multi), ("reg", reg), ("bin", binary)):
        write(out, name, *make(random.Random(7)))


if __name__ == "__main__":
    main()
