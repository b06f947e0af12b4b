"""The replay report's size and render time for many windows and features (issue target:
1,000 windows x 50 features under a few MB).

    .venv/bin/python bench/report.py [--windows 1000] [--features 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.ingest.report.render import render
from tests.plugins.test_report import window_lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=50)
    args = parser.parse_args()
    lines = window_lines(args.windows, args.features)
    began = time.perf_counter()
    page = render(lines).encode()
    seconds = time.perf_counter() - began
    print(f"{args.windows} windows x {args.features} features: {len(page) / 1e6:.2f} MB "
          f"(ECharts 1.12 MB of it), rendered in {seconds:.2f} s")


if __name__ == "__main__":
    main()
