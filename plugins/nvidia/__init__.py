"""NVIDIA GPU telemetry through NVML: fields, XID events, throttling, memory health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.model import Severity
from plugins.nvidia.config import NvidiaConfig
from plugins.nvidia.state import GpuId, NvidiaState


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return NvidiaConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, NvidiaConfig)  # noqa: S101 - validated with our model
    from plugins.nvidia.collector import GpuCollector, HealthCollector  # noqa: PLC0415
    from plugins.nvidia.events import XidService  # noqa: PLC0415

    nvml, state = backend(config), NvidiaState()

    def emit(kind: str, severity: Severity, data: dict[str, Any], gpu: GpuId | None) -> None:
        attributes = {} if gpu is None else {**gpu.labels}
        ctx.emit(ctx.event(kind, severity=severity, data=data, attributes=attributes))

    components: list[Component] = [
        GpuCollector(config, nvml, state, emit), HealthCollector(state, config.timeout)]
    if config.xid_events:
        components.append(XidService(nvml, state, emit, config.event_wait,
                                     retry=config.interval))
    return components


def backend(config: NvidiaConfig) -> Any:
    """pynvml itself, or the fake with pynvml's API; imported only when the plugin is on."""
    if config.backend == "fake":
        from plugins.nvidia.fake import FakeNvml  # noqa: PLC0415

        return FakeNvml(Path(config.fake_scenario or ""))
    import pynvml  # noqa: PLC0415

    return pynvml


@hookimpl
def inferwatch_audit_checks(config: PluginConfig, audit: AuditContext) -> list[AuditCheck]:
    """GPU readiness, through the backend the collector would use (the fake one included)."""
    from plugins.nvidia.audit import gpu_checks  # noqa: PLC0415

    assert isinstance(config, NvidiaConfig)  # noqa: S101 - validated with our model
    return list(gpu_checks(config, audit, backend(config)))
