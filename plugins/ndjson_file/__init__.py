"""`ndjson_file`: a sample source that follows files of NDJSON samples and labels.

The built-in proof that a plugin can feed ingestion (`PluginContext.submit`): lines go the
same way as the Unix socket's. Offsets are kept in state_dir by device and inode.
"""

from __future__ import annotations

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.ndjson_file.config import NdjsonFileConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return NdjsonFileConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    from plugins.ndjson_file.source import FileSource, FileStats  # noqa: PLC0415

    assert isinstance(config, NdjsonFileConfig)  # noqa: S101 - validated with our model
    source = FileSource(config, ctx)
    return [source, FileStats(source.tailer.stats)]
