"""Host telemetry from psutil: CPU, memory, filesystems, disk and network I/O, processes."""

from __future__ import annotations

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.host.collectors import (
    CpuCollector,
    DiskIOCollector,
    FilesystemCollector,
    MemoryCollector,
    NetworkCollector,
    SystemCollector,
    TemperatureCollector,
)
from plugins.host.config import HostConfig
from plugins.host.processes import ProcessCollector


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return HostConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, HostConfig)  # noqa: S101 - the core validated it with our model
    components: list[Component] = [
        CpuCollector(), MemoryCollector(), FilesystemCollector(config),
        DiskIOCollector(config), NetworkCollector(config), SystemCollector(),
    ]
    if config.temperatures:
        components.append(TemperatureCollector())
    if config.processes:
        components.append(ProcessCollector(config.processes))
    return components


@hookimpl
def inferwatch_audit_checks(config: PluginConfig, audit: AuditContext) -> list[AuditCheck]:
    """Whether the configured model-server processes run (read under the audited root)."""
    from plugins.host.audit import model_server_checks  # noqa: PLC0415

    assert isinstance(config, HostConfig)  # noqa: S101 - validated with our model
    return list(model_server_checks(config, audit)) if config.enabled else []
