"""Drift detection that does not cry wolf: effect sizes with sample-size-aware thresholds,
a multivariate correlation check, sequential CUSUM, K-of-N persistence, retrain requests.

Reads the windows the ingest plugin publishes; see docs/drift.md.
"""

from __future__ import annotations

import argparse

from agent import hookimpl
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.drift.config import DriftConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return DriftConfig


@hookimpl
def inferwatch_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from plugins.drift.command import add_commands  # noqa: PLC0415 - only when asked

    add_commands(subparsers)


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    from plugins.drift.monitor import DriftMonitor  # noqa: PLC0415 - numpy on demand

    assert isinstance(config, DriftConfig)  # noqa: S101 - validated with our model
    return [DriftMonitor(config, ctx)]
