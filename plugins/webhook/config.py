"""`[plugins.webhook]`: where events are POSTed, how they are signed, and which ones."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from agent.config import FieldError, InputFile, Secret, SinkConfig

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
RESERVED = frozenset({"content-type", "content-length", "host", "x-inferwatch-signature",
                      "x-inferwatch-timestamp"})


class WebhookConfig(SinkConfig):
    """Durable by default: each event waits in `<state_dir>/sinks/webhook-webhook.sqlite`
    until the receiver answered 2xx (docs/sinks.md)."""

    enabled: bool = False
    url: str = ""
    secret: Secret | None = None  # HMAC-SHA256 key: X-Inferwatch-Signature over the body
    bearer_token: Secret | None = None  # Authorization: Bearer <token>
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Headers whose values are credentials (an API key): read from a file or the environment.
    secret_headers: dict[str, Secret] = msgspec.field(default_factory=dict)
    ca_file: InputFile | None = None  # for an https:// url signed by a private CA
    batch: bool = False  # one POST per event (false) or a JSON array per batch (true)
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    # "envelope": the event as DESIGN.md has it. "alertmanager": alert events as
    # Alertmanager's webhook receiver payload (docs/alerts-sinks.md); only `alert.*` kinds.
    format: Literal["envelope", "alertmanager"] = "envelope"
    receiver: str = "inferwatch"  # the payload's `receiver` (format = "alertmanager")
    external_url: str = ""  # the payload's `externalURL` (format = "alertmanager")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.enabled and not self.url:
            raise FieldError("url", "required when the webhook is enabled")
        if self.url:
            _check_url(self.url)
        if self.format == "alertmanager":
            self._alert_match()
        if self.ca_file and not self.url.startswith("https://"):
            raise FieldError("ca_file", "a CA file needs an https:// url")
        for name, value in self.headers.items():
            _check_header(name, value)
        for name, secret in self.secret_headers.items():
            _check_header(name, secret.reveal(), table="secret_headers")
        names = [n.lower() for n in (*self.headers, *self.secret_headers)]
        if len(set(names)) != len(names):
            raise FieldError("secret_headers", "a header is set twice (headers and "
                             "secret_headers, in any case)")
        if self.bearer_token is not None and any(c in self.bearer_token.reveal()
                                                 for c in "\r\n\0"):
            raise FieldError("bearer_token", "must not contain CR, LF or NUL")
        if self.bearer_token is not None and "authorization" in names:
            raise FieldError("bearer_token", "set Authorization in headers or bearer_token, "
                             "not both")


    def _alert_match(self) -> None:
        """Only alert kinds have an Alertmanager payload: the default `match` becomes
        `["alert.*"]`, and a glob that could take another kind is refused here, not at
        delivery."""
        if self.match == ["*"]:
            self.match = ["alert.*"]
        for i, glob in enumerate(self.match):
            if not glob.startswith("alert."):
                raise FieldError(f"match[{i}]", f"{glob!r} can take events that are not "
                                 'alerts; with format = "alertmanager" every glob starts '
                                 'with "alert." (e.g. "alert.*")')
        if not self.receiver or len(self.receiver) > 256:
            raise FieldError("receiver", "between 1 and 256 characters")
        if self.external_url:
            _check_url(self.external_url, key="external_url")


def _check_url(url: str, key: str = "url") -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError(key, "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise FieldError(key, "must not hold credentials (use bearer_token = {file = ...})")


def _check_header(name: str, value: str, table: str = "headers") -> None:
    key = f"{table}.{name}"
    if not _TOKEN.match(name):
        raise FieldError(key, "not a valid HTTP header name")
    if name.lower() in RESERVED:
        raise FieldError(key, "set by the agent; it cannot be overridden")
    if any(c in value for c in "\r\n\0"):
        raise FieldError(key, "a header value must not contain CR, LF or NUL")
