"""From `[plugins.logs]` to components: one outbox and sender per output, one service per
input, and the stats collector."""

from __future__ import annotations

from pathlib import Path

from agent.components import Component
from agent.context import PluginContext
from agent.outbox import Outbox
from plugins.logs.config import LogOutput, LogsConfig
from plugins.logs.journald import JournalService
from plugins.logs.outputs.base import LogOutbox, Sender
from plugins.logs.pipeline import InputService
from plugins.logs.stats import LogsStats


def components(config: LogsConfig, ctx: PluginContext) -> list[Component]:
    senders = [_sender(out, name, ctx) for out, name in zip(
        config.outputs, config.output_names(), strict=True)]
    boxes = [s.box for s in senders]
    inputs: list[InputService | JournalService] = []
    for item, name in zip(config.inputs, config.input_names(), strict=True):
        if item.journald:
            inputs.append(JournalService(name, item, config.redaction.redactor(item.redact),
                                         boxes, _state(ctx, name), batch_bytes=config.batch_bytes))
            continue
        inputs.append(InputService(
            name, item, config.redaction.redactor(item.redact), boxes, _state(ctx, name),
            poll=config.poll_interval, scan=config.scan_interval, batch_bytes=config.batch_bytes))
    return [*senders, *inputs, LogsStats(inputs, senders, config.max_file_labels)]


def _state(ctx: PluginContext, name: str) -> Path:
    return ctx.state_root / "plugins" / "logs" / f"checkpoint-{name}.json"


def _sender(out: LogOutput, name: str, ctx: PluginContext) -> Sender:
    path = ctx.state_root / "outbox" / f"logs-{name}.db"
    box = LogOutbox(name, Outbox(path, max_bytes=out.outbox_max_bytes,
                                 max_age=float(out.outbox_max_age), sync=out.outbox_sync))
    if out.type == "file":
        from plugins.logs.outputs.file import FileSender  # noqa: PLC0415

        return FileSender(name, box, str(out.path), fsync=out.fsync)
    if out.type == "syslog":
        from plugins.logs.outputs.syslog import SyslogSender  # noqa: PLC0415

        return SyslogSender(name, box, host=out.host, port=out.default_port,
                            tls=out if out.tls else None, facility=out.facility,
                            app_name=out.app_name, hostname=ctx.host_id,
                            timeout=float(out.timeout))
    if out.type == "mqtt":
        from plugins.logs.outputs.mqtt import MqttSender  # noqa: PLC0415

        return MqttSender(name, box, out, out.topic.replace("{host}", ctx.host_id),
                          client_id=f"{ctx.host_id}-logs-{name}")
    from plugins.logs.outputs.loki import LokiSender  # noqa: PLC0415

    return LokiSender(name, box, out, host=ctx.host_id)

