"""`[plugins.ndjson_file]`: which files to follow and how much to read at a time."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from agent.config import ConfigPath, Duration, FieldError, PluginConfig
from agent.intake import MAX_RECORDS


class NdjsonFileConfig(PluginConfig):
    enabled: bool = False  # opt-in: it needs to be told which files to follow
    interval: Duration = Duration(1.0)  # how often the files are checked for new lines
    paths: list[ConfigPath] = msgspec.field(default_factory=list)  # files or globs
    start_at: Literal["beginning", "end"] = "beginning"  # files found on the first start
    batch_lines: Annotated[int, msgspec.Meta(ge=1, le=MAX_RECORDS)] = 1000
    max_line_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 << 20)] = 1 << 20
    max_files: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    rotate_wait: Duration = Duration(5.0)  # a rotated file is read this long after its rename
    needs: ClassVar[tuple[str, ...]] = ("ingest",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.enabled and not self.paths:
            raise FieldError("paths", "name at least one file or glob to follow")
