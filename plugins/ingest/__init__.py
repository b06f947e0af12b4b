"""Model-output ingestion: the Unix socket (the client SDK's path), HTTP and MQTT.

Records are decoded and counted, then go through the pipeline (model check, sampling) into
per-model windows, which every monitor receives, and into the late-label join.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent import hookimpl
from agent.audit import AuditCheck, AuditContext
from agent.components import Component
from agent.config import PluginConfig
from agent.context import PluginContext
from plugins.ingest.config import IngestConfig

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.window import Window


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return IngestConfig


@hookimpl
def inferwatch_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from plugins.ingest.command import add_commands  # noqa: PLC0415 - only when asked

    add_commands(subparsers)


@hookimpl
def inferwatch_recorded_window(path: Path, model: str) -> Window:
    from plugins.ingest.recorded import recorded_window  # noqa: PLC0415 - numpy on demand

    return recorded_window(path, model)


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, IngestConfig)  # noqa: S101 - validated with our model
    # Imported only when enabled: discovery imports every plugin, and these pull in numpy
    # (~12 MiB of RSS) that a host-only agent never uses.
    from plugins.ingest.intake import SubmitReceiver  # noqa: PLC0415
    from plugins.ingest.join import LabelJoin  # noqa: PLC0415
    from plugins.ingest.pipeline import Pipeline  # noqa: PLC0415
    from plugins.ingest.socket import IngestService  # noqa: PLC0415
    from plugins.ingest.stage import JoinStage, WindowService  # noqa: PLC0415
    from plugins.ingest.stats import IngestStats  # noqa: PLC0415
    from plugins.ingest.tally import Tally  # noqa: PLC0415
    from plugins.ingest.windows import WindowStage  # noqa: PLC0415

    path = Path(config.socket_path) if config.socket_path else None  # None: the SDK's rule
    tally = Tally(config.max_models)
    store = LabelJoin(ctx.state_root / "ingest" / "labels.db", ttl=float(config.label_ttl),
                      max_waiting=config.max_waiting, max_bytes=config.max_join_bytes,
                      reserve_bytes=config.join_reserve_bytes,
                      max_value_bytes=config.max_join_value_bytes)
    join = JoinStage(store, config.join_queue)
    windows = WindowStage(config.models, config.windows, max_rows=config.max_window_samples,
                          max_features=config.max_features, label_wait=float(config.label_wait),
                          limits=config.limits)
    redactor = config.redaction.redactor(config.redact) if config.redact else None
    tally.pipeline = Pipeline(config.models, windows, join.offer_many, redactor)
    join.on_joined = windows.labels
    window_service = WindowService(windows, ctx.publish, float(config.running_every)
                                   if config.running_views else None)
    components: list[Component] = [
        join, window_service, IngestService(path, config, tally),
        IngestStats(tally, join, window_service),
        SubmitReceiver(ctx, tally, config.max_record_bytes),
    ]
    if config.http_listen:
        from plugins.ingest.http import IngestHttp  # noqa: PLC0415

        components.append(IngestHttp(config, tally))
    if config.mqtt is not None:
        from plugins.ingest.mqtt import IngestSubscriber  # noqa: PLC0415

        components.append(IngestSubscriber(config.mqtt, tally, ctx.host_id))
    return components


def audited_socket(config: IngestConfig) -> Path:
    """Where the agent listens, found without creating anything (an audit changes nothing):
    the configured path, else the first of the SDK's candidates that exists, else the first
    whose folder is writable (agent.client.socket_candidates: the one shared rule)."""
    if config.socket_path:
        return Path(config.socket_path)
    from agent.client import socket_candidates  # noqa: PLC0415

    candidates = [Path(c) for c in socket_candidates()]
    for found in (c for c in candidates if c.exists()):
        return found
    for found in (c for c in candidates if os.access(c.parent, os.W_OK | os.X_OK)):
        return found
    return candidates[0]


@hookimpl
def inferwatch_audit_checks(config: PluginConfig, audit: AuditContext) -> list[AuditCheck]:
    """Whether the model server can reach the ingest socket (when ingest is enabled)."""
    from plugins.ingest.audit import socket_check  # noqa: PLC0415

    assert isinstance(config, IngestConfig)  # noqa: S101 - validated with our model
    if not config.enabled:
        return []
    return [socket_check(audited_socket(config), audit)]
