"""`[plugins.mqtt]`: broker, TLS, credentials, QoS, topics and the outbox's bounds."""

from __future__ import annotations

import ssl
from typing import Annotated, Literal, Protocol

import msgspec

from agent.config import Duration, FieldError, InputFile, Secret, SinkConfig

MiB = 1 << 20


def topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be a publish prefix, or None."""
    if not topic or topic.startswith("/") or topic.endswith("/"):
        return "must not be empty or start/end with '/'"
    if "//" in topic:
        return "must not contain empty levels ('//')"
    if any(c in topic for c in "+#\0"):
        return "must not contain the wildcards '+' or '#' (or NUL)"
    return None


class TlsSettings(Protocol):
    """Read-only, so that a config whose paths are `InputFile`s (a str) satisfies it."""

    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...
    @property
    def tls_verify(self) -> bool: ...


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file and settings.key_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class MqttConfig(SinkConfig):
    """`match` and `min_severity` route as for any sink (docs/sinks.md); the outbox and its
    bounds are this plugin's own (`outbox_*`), and always on."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # 0: 1883, or 8883 with TLS
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = ""  # default: the agent's host_id
    username: str | None = None
    password: Secret | None = None
    qos: Literal[0, 1, 2] = 1
    topic_prefix: str = "inferwatch/v1/{host}"
    keepalive: Duration = Duration(30.0)
    tls: bool = False
    ca_file: InputFile | None = None
    cert_file: InputFile | None = None
    key_file: InputFile | None = None
    tls_verify: bool = True
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1024, le=256 * MiB)] = 1 * MiB
    inflight: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 100  # paho is fastest near 100
    window: Annotated[int, msgspec.Meta(ge=1, le=60000)] = 2000  # outbox rows per read/delete
    ack_timeout: Duration = Duration(30.0)
    outbox_sync: Literal["full", "normal"] = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        if problem := topic_problem(self.topic_prefix.replace("{host}", "host")):
            raise FieldError("topic_prefix", problem)
        if (self.cert_file is None) != (self.key_file is None):
            raise FieldError("key_file", "cert_file and key_file go together")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise FieldError("tls", "ca_file/cert_file are set but tls = false")
        if self.password is not None and self.username is None:
            raise FieldError("username", "a password needs a username")
        if not self.durable:
            raise FieldError("durable", "the MQTT sink always keeps events in its outbox")
        if self.qos == 0:
            raise FieldError("qos", "0 is not durable: the broker never acknowledges, so the "
                             "outbox would delete events it cannot know arrived; use 1 or 2")

    @property
    def broker_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)
