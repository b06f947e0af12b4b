"""Size and age of model artifact files: a stale or truncated checkpoint is visible at a glance."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from agent import Accumulator, Collector, PluginConfig, PluginContext, gauge, hookimpl

__version__ = "0.1.0"

SIZE = gauge("inferwatch_model_file_size_bytes", "Size of a model artifact.", "model")
AGE = gauge("inferwatch_model_file_age_seconds", "Seconds since the artifact changed.", "model")
PRESENT = gauge("inferwatch_model_file_present", "1 if the artifact exists.", "model")


class ModelFilesConfig(PluginConfig):
    enabled: bool = False  # opt-in: it needs to be told which files to watch
    files: dict[str, str] = msgspec.field(default_factory=dict)  # model name -> path


class ModelFiles(Collector):
    def __init__(self, files: dict[str, str]) -> None:
        super().__init__("files")
        self.files = {name: Path(path) for name, path in files.items()}  # no I/O here

    def collect(self, out: Accumulator) -> None:
        now = time.time()
        for name, path in self.files.items():
            try:
                st = path.stat()
            except FileNotFoundError:
                out.add(PRESENT, 0, model=name)
                continue
            out.add(PRESENT, 1, model=name)
            out.add(SIZE, st.st_size, model=name)
            out.add(AGE, now - st.st_mtime, model=name)


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return ModelFilesConfig


@hookimpl
def inferwatch_components(config: ModelFilesConfig, ctx: PluginContext) -> list[Collector]:
    return [ModelFiles(config.files)]
