"""A recording as one window (`inferwatch_recorded_window`): what `reference build` profiles.

NDJSON in the sample format goes through the same decoding and column building as live
traffic, so a reference and the windows it is compared with agree on types.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from agent.errors import ConfigError
from agent.model import Sample
from agent.recordings import open_lines
from agent.window import Window
from plugins.ingest.decode import decode_many
from plugins.ingest.windows import WindowStage


def recorded_window(path: Path, model: str) -> Window:
    samples: list[Sample] = []
    with open_lines(path) as fh:
        while lines := [line for line in fh.readlines(1 << 22) if line.strip()]:
            # Every version of the model, as one stream: recorded traffic usually spans
            # several, and `--model-version` names the profile's version, not a filter.
            samples += [msgspec.structs.replace(r, model_version="")
                        for r, _ in decode_many(lines)
                        if isinstance(r, Sample) and r.model == model]
    if not samples:
        raise ConfigError([f"--from: {path}: no predictions of model {model!r}"])
    stage = WindowStage({}, [f"{len(samples)}n"], max_rows=len(samples), label_wait=0)
    for i, sample in enumerate(samples):
        stage.add(sample, float(i), float(i))
    (window,) = stage.flush()
    return window
