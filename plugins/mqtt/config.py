"""`[plugins.mqtt]`: broker, TLS, credentials, QoS, topics and the outbox's bounds."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from agent.broker import Broker, topic_problem
from agent.config import Duration, FieldError, SinkConfig

MiB = 1 << 20


class MqttConfig(SinkConfig):
    """`match` and `min_severity` route as for any sink (docs/sinks.md); the outbox and its
    bounds are this plugin's own (`outbox_*`), and always on."""

    # host, port, client_id (default: the agent's host_id), username, password, tls, ca_file,
    # cert_file, key_file, tls_verify: agent.broker's, in this section itself.
    flattened: ClassVar[tuple[str, ...]] = ("broker",)
    enabled: bool = False
    broker: Broker = msgspec.field(default_factory=Broker)
    protocol: Literal["5", "3.1.1"] = "5"
    qos: Literal[0, 1, 2] = 1
    topic_prefix: str = "inferwatch/v1/{host}"
    keepalive: Duration = Duration(30.0)
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 * MiB)] = 1 * MiB
    inflight: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 100  # paho is fastest near 100
    window: Annotated[int, msgspec.Meta(ge=1, le=60000)] = 2000  # outbox rows per read/delete
    ack_timeout: Duration = Duration(30.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if problem := topic_problem(self.topic_prefix.replace("{host}", "host")):
            raise FieldError("topic_prefix", problem)
        if not self.durable:
            raise FieldError("durable", "the MQTT sink always keeps events in its outbox")
        if self.qos == 0:
            raise FieldError("qos", "0 is not durable: the broker never acknowledges, so the "
                             "outbox would delete events it cannot know arrived; use 1 or 2")
