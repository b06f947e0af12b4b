"""Model-output ingestion: the Unix socket (the client SDK's path), HTTP and MQTT.

Records are decoded and counted, then go through the pipeline (model check, sampling) into
per-model windows, which every monitor receives, and into the late-label join.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.ingest.config import IngestConfig
from plugins.ingest.join import LabelJoin
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.socket import IngestService
from plugins.ingest.stage import JoinStage, WindowService
from plugins.ingest.stats import IngestStats
from plugins.ingest.tally import Tally
from plugins.ingest.windows import WindowStage


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return IngestConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, IngestConfig)  # noqa: S101 - validated with our model
    path = socket_path(config, ctx.state_root)
    tally = Tally(config.max_models)
    store = LabelJoin(ctx.state_root / "ingest" / "labels.db", ttl=float(config.label_ttl),
                      max_waiting=config.max_waiting)
    join = JoinStage(store, config.join_queue)
    windows = WindowStage(config.models, config.windows, max_rows=config.max_window_samples,
                          max_features=config.max_features, label_wait=float(config.label_wait))
    tally.pipeline = Pipeline(config.models, windows, join.offer_many)
    join.on_joined = windows.labels
    window_service = WindowService(windows, ctx.publish)
    components: list[Component] = [
        join, window_service, IngestService(path, config, tally),
        IngestStats(tally, join, window_service),
    ]
    if config.http_listen:
        from plugins.ingest.http import IngestHttp  # noqa: PLC0415

        components.append(IngestHttp(config, tally))
    if config.mqtt is not None:
        from plugins.ingest.mqtt import IngestSubscriber  # noqa: PLC0415

        components.append(IngestSubscriber(config.mqtt, tally, ctx.host_id))
    return components


def socket_path(config: IngestConfig, state_root: Path) -> Path:
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(config.socket_path or (Path(runtime) if runtime else state_root) /
                "ingest.sock")


@hookimpl
def inferwatch_audit_checks(config: PluginConfig, audit: AuditContext) -> list[AuditCheck]:
    """Whether the model server can reach the ingest socket (when ingest is enabled)."""
    from plugins.ingest.audit import socket_check  # noqa: PLC0415

    assert isinstance(config, IngestConfig)  # noqa: S101 - validated with our model
    if not config.enabled:
        return []
    return [socket_check(socket_path(config, Path(audit.config.agent.state_dir)), audit)]
