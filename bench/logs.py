"""Log shipping benchmarks, each beside a peer measured in the same run.

`redact`: the redaction engine alone on 200-byte mixed lines, beside `sed -E` doing the same
four substitutions (sed has no Luhn check and no lookbehind, so it does less work).
`ship`: tail -> parse -> redact -> rsyslog (RFC 5424 over TCP) through the real agent, beside
`tail -F FILE | sed -E ... ` and rsyslog reading the file itself with imfile.

    .venv/bin/python bench/logs.py redact [--mb 40] [--reference]
    .venv/bin/python bench/logs.py ship [--lines 400000]
    .venv/bin/python bench/logs.py soak [--seconds 600 --rate 20000]   (RSS over time)
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.redact import Redactor, luhn

SED = [
    "-E",
    "-e", r"s/(Bearer|bearer|BEARER)( +)[A-Za-z0-9._~+/-]+=*/\1\2[REDACTED:TOKEN]/g",
    "-e", r"s/[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}/[REDACTED:EMAIL]/g",
    "-e", r"s/[0-9]([ -]?[0-9]){12,18}/[REDACTED:CARD]/g",
    "-e", r"s/((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
          r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/[REDACTED:IP]/g",
]


def _card(rng: random.Random) -> str:
    while True:
        digits = "4" + "".join(rng.choice("0123456789") for _ in range(15))
        if luhn(digits):
            return " ".join(digits[i:i + 4] for i in range(0, 16, 4))


def mixed_lines(count: int, seed: int = 7, *, dense: bool = False) -> list[str]:
    """200-byte lines like an inference server's. Typical: one field per line, 4 in 10 of them
    PII (an address, an email, a bearer token, a card). Dense: three fields per line, 4 in 7
    of them PII (about 1.7 redactions per line)."""
    rng = random.Random(seed)
    extras = [
        lambda: f"client={rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
                f".{rng.randint(1, 254)}:{rng.randint(1024, 65535)}",
        lambda: f"user=u{rng.randint(1, 10**6)}@example.com",
        lambda: f"auth=Bearer tok{rng.getrandbits(64):x}.{rng.getrandbits(32):x}",
        lambda: f"card={_card(rng)}",
        lambda: f"request_id=r-{rng.getrandbits(48):x} model=fraud version=3",
        lambda: f"latency_ms={rng.random() * 100:.3f} batch={rng.randint(1, 64)}",
        lambda: f"trace={rng.getrandbits(128):032x}",
    ]
    out = []
    for i in range(count):
        head = f"2026-11-29T18:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z INFO server " \
               f"handled POST /v1/predict status=200 "
        pool = extras if dense else extras + extras[4:]
        parts = [head] + [rng.choice(pool)() for _ in range(3 if dense else 1)]
        line = " ".join(parts)
        out.append((line + " " + "x" * 200)[:199])
    return out


def bench_redact(megabytes: int, *, reference: bool = False) -> None:
    for dense in (False, True):
        _bench_redact(megabytes, dense=dense, reference=reference)


def _bench_redact(megabytes: int, *, dense: bool, reference: bool) -> None:
    lines = mixed_lines(20_000, dense=dense)
    size = sum(len(line) + 1 for line in lines)
    repeat = max(1, megabytes * 1_000_000 // size)
    redactor = Redactor()
    ours, ours_cpu = _time_engine(redactor, lines, repeat)
    before = ""
    if reference:  # the engine before the speed work, kept by the tests as a reference
        from tests.unit.redact_reference import Redactor as Reference  # noqa: PLC0415
        _, old_cpu = _time_engine(Reference(), lines, repeat)
        before = f"previous engine {size * repeat / 1e6 / old_cpu:.1f} MB per CPU-second; "
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        for _ in range(repeat):
            f.write("\n".join(lines) + "\n")
        path = f.name
    start, children = time.perf_counter(), _children_cpu()
    subprocess.run(["sed", *SED, path], stdout=subprocess.DEVNULL, check=True)
    sed, sed_cpu = time.perf_counter() - start, _children_cpu() - children
    Path(path).unlink()
    total = size * repeat / 1e6
    kind = "dense" if dense else "typical"
    print(f"redact ({kind}): {total:.0f} MB of 200-byte lines; inferwatch {total / ours:.1f} MB/s "
          f"wall, {total / ours_cpu:.1f} MB per CPU-second; {before}"
          f"sed -E {total / sed:.1f} MB/s wall, "
          f"{total / sed_cpu:.1f} MB per CPU-second; matches {dict(redactor.counts)}")


def _time_engine(redactor: Any, lines: list[str], repeat: int) -> tuple[float, float]:
    redactor.redact(lines[0])
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for line in lines:
            redactor.redact(line)
    return time.perf_counter() - start, time.process_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["redact", "ship", "soak"])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--mb", type=int, default=40)
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--reference", action="store_true",
                        help="redact: also time the previous engine (tests/unit)")
    args = parser.parse_args()
    if args.what == "redact":
        bench_redact(args.mb, reference=args.reference)
    elif args.what == "ship":
        from bench.logs_ship import bench_ship  # noqa: PLC0415
        bench_ship(args.lines)
    else:
        from bench.logs_ship import bench_soak  # noqa: PLC0415
        bench_soak(args.seconds, args.rate)


if __name__ == "__main__":
    main()
