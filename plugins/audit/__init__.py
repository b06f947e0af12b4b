"""Host readiness for inference: `inferwatch audit`, and the same audit on a schedule.

The checks of the host itself (CPU, memory, storage, network, OS, scrape) live here; GPU,
ingest and model-server checks come from the plugins that own them, through the same
`inferwatch_audit_checks` hook a third-party plugin implements.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.audit.config import AuditConfig


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return AuditConfig


@hookimpl
def inferwatch_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from plugins.audit.command import add_command  # noqa: PLC0415 - only when asked

    add_command(subparsers)


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    from plugins.audit.collector import AuditCollector  # noqa: PLC0415

    assert isinstance(config, AuditConfig)  # noqa: S101 - validated with our model
    return [AuditCollector(config, ctx)]


@hookimpl
def inferwatch_audit_checks(config: PluginConfig, audit: AuditContext) -> Iterator[AuditCheck]:
    from plugins.audit.compute import cpu_checks, memory_checks  # noqa: PLC0415
    from plugins.audit.integration import prometheus_check  # noqa: PLC0415
    from plugins.audit.network import network_checks  # noqa: PLC0415
    from plugins.audit.storage import storage_checks  # noqa: PLC0415
    from plugins.audit.system import os_checks  # noqa: PLC0415

    settings = config if isinstance(config, AuditConfig) else AuditConfig()
    yield from cpu_checks(audit)
    yield from memory_checks(audit)
    yield from storage_checks(audit, settings.probe_bytes, settings.probe_seconds,
                              _model_dir(settings))
    yield from network_checks(audit, float(settings.connect_timeout))
    yield from os_checks(audit)
    yield prometheus_check(audit)


def _model_dir(settings: AuditConfig) -> str | None:
    """The fixed part of the first model glob: where new model versions land."""
    if not settings.model_paths:
        return None
    head = settings.model_paths[0].split("*", 1)[0]
    return head.rsplit("/", 1)[0] or "/"
