"""inferwatch: the monitoring agent for ML inference hosts.

This module is the facade plugin authors import; everything in `__all__` is public API.
Names load lazily so that `import agent.client` (the model-server SDK) stays stdlib-only.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing costs the client SDK ~5 ms

__version__ = "0.1.0"

_EXPORTS = {
    "AuditCheck": "agent.audit",
    "AuditContext": "agent.audit",
    "Accumulator": "agent.metrics",
    "MetricDef": "agent.metrics",
    "counter": "agent.metrics",
    "gauge": "agent.metrics",
    "Collector": "agent.components",
    "Component": "agent.components",
    "Monitor": "agent.components",
    "Service": "agent.components",
    "Sink": "agent.components",
    "Duration": "agent.config",
    "PluginConfig": "agent.config",
    "Secret": "agent.config",
    "PluginContext": "agent.context",
    "ConfigError": "agent.errors",
    "NotReadyError": "agent.errors",
    "PermanentError": "agent.errors",
    "PermanentDeliveryError": "agent.errors",
    "SinkConfig": "agent.config",
    "hookimpl": "agent.hookspecs",
    "Event": "agent.model",
    "Label": "agent.model",
    "Sample": "agent.model",
    "Severity": "agent.model",
}
__all__ = [
    "Accumulator",
    "AuditCheck",
    "AuditContext",
    "Collector",
    "Component",
    "ConfigError",
    "Duration",
    "Event",
    "Label",
    "MetricDef",
    "Monitor",
    "NotReadyError",
    "PermanentDeliveryError",
    "PermanentError",
    "PluginConfig",
    "PluginContext",
    "Sample",
    "Secret",
    "Service",
    "Severity",
    "Sink",
    "SinkConfig",
    "__version__",
    "counter",
    "gauge",
    "hookimpl",
]

if TYPE_CHECKING:
    from typing import Any

    from agent.audit import AuditCheck as AuditCheck
    from agent.audit import AuditContext as AuditContext
    from agent.components import Collector as Collector
    from agent.components import Component as Component
    from agent.components import Monitor as Monitor
    from agent.components import Service as Service
    from agent.components import Sink as Sink
    from agent.config import Duration as Duration
    from agent.config import PluginConfig as PluginConfig
    from agent.config import Secret as Secret
    from agent.config import SinkConfig as SinkConfig
    from agent.context import PluginContext as PluginContext
    from agent.errors import ConfigError as ConfigError
    from agent.errors import NotReadyError as NotReadyError
    from agent.errors import PermanentDeliveryError as PermanentDeliveryError
    from agent.errors import PermanentError as PermanentError
    from agent.hookspecs import hookimpl as hookimpl
    from agent.metrics import Accumulator as Accumulator
    from agent.metrics import MetricDef as MetricDef
    from agent.metrics import counter as counter
    from agent.metrics import gauge as gauge
    from agent.model import Event as Event
    from agent.model import Label as Label
    from agent.model import Sample as Sample
    from agent.model import Severity as Severity


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
