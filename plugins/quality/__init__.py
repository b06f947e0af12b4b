"""Model quality per window: realized metrics once labels arrive, CBPE estimates before,
the gap between them, business cost, fairness across groups and data quality.

Reads the windows the ingest plugin publishes; see docs/quality.md.
"""

from __future__ import annotations

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.quality.config import QualityConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return QualityConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    from plugins.quality.monitor import QualityMonitor  # noqa: PLC0415 - numpy on demand

    assert isinstance(config, QualityConfig)  # noqa: S101 - validated with our model
    return [QualityMonitor(config, ctx)]
