"""`inferwatch reference build`: a reference profile from training or validation data.

NDJSON in the sample format (features, prediction, scores) goes through the same decoding
and column building as live traffic, so the reference and the windows agree on types. CSV
takes a header row; a column whose every non-empty value parses as a number is numeric.
Parquet is read when pyarrow is installed.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from agent.errors import ConfigError
from agent.loader import Plugins, discover
from agent.recordings import open_lines
from plugins.drift.columns import drift_columns
from plugins.drift.profile import Profile, build


def from_ndjson(path: Path, model: str, plugins: Plugins) -> dict[str, np.ndarray]:
    """Through the plugin that reads recordings (ingest): the reference and the windows it is
    compared with are decoded and built alike."""
    window = plugins.manager.hook.inferwatch_recorded_window(path=path, model=model)
    if window is None:
        raise ConfigError([f"--from: {path}: reading NDJSON needs the ingest plugin"])
    left_out = window.quality.get("_other", {}).get("too_many_features_ratio", 0.0)
    if left_out:  # a flood of names in the file: the features it pushed out get no statistics
        kept = sorted(n for n in window.features if not n.startswith("__"))
        print(f"inferwatch: reference build: {path}: more feature names than [plugins.ingest]"
              f" max_features; {left_out * window.rows:.0f} values under the names beyond the"
              f" first {len(kept)} (in name order) were left out and get no statistics: "
              f"kept {', '.join(kept[:5])}{', ...' if len(kept) > 5 else ''}",
              file=sys.stderr)
    return drift_columns(window)


def from_csv(path: Path) -> dict[str, np.ndarray]:
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
    with open_lines(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ConfigError([f"--from: {path}: no rows"])
    columns: dict[str, np.ndarray] = {}
    for name in rows[0]:
        values = [row.get(name) or None for row in rows]
        numbers = [_number(v) for v in values]
        if all(v is None or n is not None for v, n in zip(values, numbers, strict=True)):
            columns[name] = np.array([math.nan if n is None else n for n in numbers])
        else:
            columns[name] = np.array(values, dtype=object)
    return columns


def from_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found]  # noqa: PLC0415
    except ImportError:
        raise ConfigError(["--from: reading Parquet needs pyarrow (pip install pyarrow)"]
                          ) from None
    table = pq.read_table(path)
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        columns[name] = (values.astype(np.float64) if values.dtype.kind in "biuf"
                         else np.array([None if v is None else str(v) for v in values],
                                       dtype=object))
    return columns


def build_reference(source: Path, model: str, version: str,
                    plugins: Plugins | None = None) -> Profile:
    if not source.is_file():
        raise ConfigError([f"--from: {source}: no such file"])
    suffixes = "".join(source.suffixes).lower()
    if ".parquet" in suffixes:
        columns = from_parquet(source)
    elif ".csv" in suffixes:
        columns = from_csv(source)
    else:
        columns = from_ndjson(source, model, plugins or discover())
    return build(columns, model=model, model_version=version)


def _number(value: str | None) -> float | None:
    """A number, `nan` and `inf` included (numpy and pandas write them; the profile sets
    non-finite values aside and counts them); None for text."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None

