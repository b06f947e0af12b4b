"""Events over MQTT, through a durable outbox: nothing accepted is lost to a broker outage."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent import hookimpl, sinkmetrics
from agent.broker import topic_problem
from agent.components import Collector, Component
from agent.config import PluginConfig
from agent.context import PluginContext
from agent.errors import PermanentError
from agent.metrics import Accumulator
from plugins.mqtt import metrics as m
from plugins.mqtt.config import MqttConfig

if TYPE_CHECKING:
    from agent.outbox import Outbox
    from plugins.mqtt.publisher import Publisher
    from plugins.mqtt.sink import MqttSink


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return MqttConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, MqttConfig)  # noqa: S101 - validated with our model
    from plugins.mqtt.publisher import Publisher  # noqa: PLC0415 - aiomqtt only when enabled
    from plugins.mqtt.sink import MqttSink  # noqa: PLC0415

    prefix = config.topic_prefix.replace("{host}", ctx.host_id)
    if problem := topic_problem(prefix):
        raise PermanentError(f"topic prefix {prefix!r} {problem} (check agent.host_id)")
    # The outbox is the core's (a durable sink's, agent/delivery.py), in
    # `<state_dir>/sinks/mqtt-outbox.sqlite`; rows of the old `outbox/mqtt.db` move there.
    publisher = Publisher(config, prefix, config.broker.client_id or ctx.host_id)
    sink = MqttSink(publisher, prefix, config.max_payload_bytes)
    return [sink, publisher, MqttStats(sink, publisher)]


class MqttStats(Collector):
    """Outbox and connection figures from memory: cheap, and never waits on the broker."""

    blocking = False

    def __init__(self, sink: MqttSink, publisher: Publisher) -> None:
        super().__init__("stats")
        self.sink, self.publisher = sink, publisher

    async def collect(self, out: Accumulator) -> None:
        delivery, sink = self.sink.delivery, "mqtt"
        pub = self.publisher
        if delivery is None:  # the core gives every durable sink one; never without
            return
        outbox = delivery.outbox
        out.add(m.CONNECTED, 1 if pub.connected else 0)
        out.add(m.CONNECTS, pub.connects)
        for reason, count in pub.errors.items():
            out.add(m.CONNECT_ERRORS, count, reason=reason)
        for reason, count in pub.refusals.totals.items():
            out.add(m.REFUSED, count, reason=reason)
        out.add(m.DEPTH, outbox.depth, sink=sink)
        out.add(m.BYTES, outbox.bytes, sink=sink)
        oldest = 0.0 if outbox.oldest is None else max(0.0, time.time() - outbox.oldest)
        out.add(m.OLDEST, oldest, sink=sink)
        for reason in ("full", "expired", "too_large", "corrupt"):
            out.add(m.DROPPED, outbox.dropped[reason], sink=sink, reason=reason)
        out.add(m.DELIVERED, delivery.delivered, sink=sink)
        out.add(m.RESENT, pub.resent, sink=sink)
        self._as_sink(out, outbox, oldest)

    def _as_sink(self, out: Accumulator, outbox: Outbox, oldest: float) -> None:
        """The series every durable sink has (docs/sinks.md), so one alert covers them all;
        delivered is the `{sink="mqtt"}` series above, not repeated."""
        labels = {"plugin": "mqtt", "sink": "outbox"}
        out.add(sinkmetrics.QUEUED, outbox.depth, **labels)
        out.add(sinkmetrics.OLDEST, oldest, **labels)
        out.add(sinkmetrics.FAILED, sum(self.publisher.errors.values()), **labels)
        for reason in ("full", "expired", "too_large", "corrupt"):
            out.add(sinkmetrics.DROPPED, outbox.dropped[reason], **labels, reason=reason)

