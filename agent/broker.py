"""MQTT broker settings: one type for every MQTT client in the tree (the mqtt sink's
publisher, ingest's subscription, and any plugin's), so they validate alike.

The keys sit flat in a plugin's section (`[plugins.mqtt] host = ...`, via
`PluginConfig.flattened`) or in a table of their own (`[plugins.ingest.mqtt]`, a subclass).
"""

from __future__ import annotations

import ssl
from typing import Annotated, Protocol

import msgspec

from agent.config import FieldError, InputFile, Secret


class Broker(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # 0: 1883, or 8883 with TLS
    client_id: str = ""  # default: the client's own (the agent's host_id, say)
    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    ca_file: InputFile | None = None
    cert_file: InputFile | None = None
    key_file: InputFile | None = None
    tls_verify: bool = True

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise FieldError("key_file", "cert_file and key_file go together")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise FieldError("tls", "ca_file/cert_file are set but tls = false")
        if self.password is not None and self.username is None:
            raise FieldError("username", "a password needs a username")

    @property
    def broker_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    @property
    def address(self) -> str:
        """`host:port`, for logs (never the credentials)."""
        return f"{self.host}:{self.broker_port}"

    def revealed_password(self) -> str | None:
        return self.password.reveal() if self.password is not None else None

    def tls_context(self) -> ssl.SSLContext | None:
        """None without TLS; a file that does not load raises (ssl.SSLError, OSError)."""
        return tls_context(self) if self.tls else None


class TlsSettings(Protocol):
    """What a client TLS context is made of; read-only, so a config whose paths are
    `InputFile`s satisfies it (a broker, a syslog output)."""

    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...
    @property
    def tls_verify(self) -> bool: ...


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client context: the CA file (or the system's), a client certificate, verification."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file and settings.key_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def topic_problem(topic: str) -> str | None:
    """Why `topic` cannot be a publish prefix (or, wildcards replaced, a filter), or None."""
    if not topic or topic.startswith("/") or topic.endswith("/"):
        return "must not be empty or start/end with '/'"
    if "//" in topic:
        return "must not contain empty levels ('//')"
    if any(c in topic for c in "+#\0"):
        return "must not contain the wildcards '+' or '#' (or NUL)"
    return None
