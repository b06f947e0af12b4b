"""Events into the outbox as MQTT rows (topic, payload): committed before anything is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import structlog

from agent.components import Acked, Sink
from agent.errors import UndeliverableError
from agent.model import Event

if TYPE_CHECKING:
    from plugins.mqtt.publisher import Publisher

log = structlog.get_logger("inferwatch")
Row = tuple[int, str, bytes]
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_"})


def event_topic(prefix: str, kind: str) -> str:
    """`gpu.xid` -> `<prefix>/events/gpu/xid`: a kind's parts are topic levels, so that
    `events/gpu/#` works (MQTT wildcards match whole levels); the envelope keeps `gpu.xid`."""
    levels = (part.translate(_UNSAFE) or "_" for part in kind.split("."))
    return f"{prefix}/events/{'/'.join(levels)}"


def topic(prefix: str, event: Event) -> str:
    """Events under `events/`; a window profile (drift's `fleet_profiles`) on
    `profiles/<model>`, where a fleet consumer subscribes (docs/fleet.md)."""
    if event.kind == "profile.window":
        model = str(event.attributes.get("model", "")).translate(_UNSAFE) or "_"
        return f"{prefix}/profiles/{model}"
    return event_topic(prefix, event.kind)


def alert_row(prefix: str, event: Event, payload: bytes) -> tuple[str, bytes] | None:
    """An alert's retained row: `<prefix>/alerts/<alertname>/<fingerprint>`, the envelope
    while it fires, an empty payload (which clears the retained message) once resolved.

    One topic per label set (fingerprint), not per alertname: a rule fires once per disk or
    GPU, and with one topic per name the last of them would overwrite the others and the
    first resolve would clear a name that still fires (docs/mqtt.md). The publisher retains
    every message under `<prefix>/alerts/` (`retained`)."""
    if event.kind not in ("alert.firing", "alert.resolved"):
        return None
    name, fingerprint = event.data.get("alertname"), event.data.get("fingerprint")
    if not isinstance(name, str) or not isinstance(fingerprint, str) or not name:
        return None
    # Bounded: a topic over 64 KiB would be refused by the client (and each level by ACLs).
    levels = (part[:200].translate(_UNSAFE).replace("\0", "_") or "_"
              for part in (name, fingerprint))
    return f"{prefix}/alerts/{'/'.join(levels)}", payload if event.kind == "alert.firing" else b""


def retained(prefix: str, topic: str) -> bool:
    """Alert rows are retained: a subscriber that connects later sees what fires now."""
    return topic.startswith(f"{prefix}/alerts/")


class MqttSink(Sink):
    """A durable sink of the core (agent/delivery.py) with rows of its own: a topic and the
    bare payload per row, committed to its outbox; the publisher sends them."""

    durable = True
    encodes = True
    series = False  # the outbox series keep this plugin's names (MqttStats, docs/mqtt.md)
    drop_reasons = ("too_large",)
    legacy_outbox = "outbox/mqtt.db"  # where the plugin kept its own outbox before
    batch_size = 2000
    queue_size = 100_000
    deliver_timeout = 3600.0  # a backstop: each window is bounded by `ack_timeout`

    def __init__(self, publisher: Publisher, prefix: str, max_payload: int) -> None:
        super().__init__("outbox")
        self.publisher, self.prefix, self.max_payload = publisher, prefix, max_payload
        self.read_size = publisher.config.window  # read, sent and deleted together
        self._encoder = msgspec.json.Encoder()
        publisher.sink = self

    def encode(self, event: Event) -> list[tuple[str, bytes]]:
        # A profile goes out bare (its own schema), not in the event envelope.
        payload = self._encoder.encode(event.data if event.kind == "profile.window" else event)
        if len(payload) > self.max_payload:
            log.warning("event too large for MQTT; dropped", kind=event.kind,
                        size=len(payload), limit=self.max_payload)
            raise UndeliverableError("too_large")
        rows = [(topic(self.prefix, event), payload)]
        if alert := alert_row(self.prefix, event, payload):
            rows.append(alert)
        return rows

    async def deliver_rows(self, rows: Sequence[Row]) -> Acked | None:
        return await self.publisher.deliver(rows, self.read_size or self.batch_size)
