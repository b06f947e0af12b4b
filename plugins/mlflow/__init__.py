"""Final windows' metrics, drift scores and cost to an MLflow tracking server."""

from __future__ import annotations

from agent import hookimpl
from agent.components import Collector, Component
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.metrics import Accumulator, counter
from plugins.mlflow.config import MlflowConfig

LOGGED = counter("inferwatch_mlflow_logged_total",
                 "Window results and events written to the tracking server.")
REFUSED = counter("inferwatch_mlflow_refused_total",
                  "Writes the tracking server refused for good (4xx), by its error code.",
                  "reason")


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return MlflowConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, MlflowConfig)  # noqa: S101 - validated with our model
    from plugins.mlflow.sink import MlflowSink  # noqa: PLC0415 - aiohttp only when enabled

    sink = MlflowSink(config)
    return [sink, MlflowStats(sink)]


class MlflowStats(Collector):
    blocking = False

    def __init__(self, sink: object) -> None:
        super().__init__("stats")
        self.sink = sink

    async def collect(self, out: Accumulator) -> None:
        out.add(LOGGED, getattr(self.sink, "logged", 0))
        for reason, count in getattr(self.sink, "refused", {}).items():
            out.add(REFUSED, count, reason=reason)
