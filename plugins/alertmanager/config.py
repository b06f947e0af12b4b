"""`[plugins.alertmanager]`: the Alertmanagers, how often alerts are renewed, auth and TLS."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

import msgspec
from yarl import URL

from agent.alertroute import AlertSinkConfig
from agent.config import Duration, FieldError, InputFile, Secret


class AlertmanagerConfig(AlertSinkConfig):
    # Every URL gets every alert (an HA cluster dedupes); one down never holds up another.
    urls: list[str] = msgspec.field(default_factory=lambda: ["http://127.0.0.1:9093"])
    match: list[str] = msgspec.field(default_factory=lambda: ["alert.firing", "alert.resolved"])
    resend_interval: Duration = Duration(60.0)  # the engine's renewal interval, by default
    resolve_timeout: Duration | None = None  # endsAt = now + this; unset: 3 x resend_interval
    # No event for a firing alert this long: the engine is gone, stop renewing it (it then
    # expires in Alertmanager at its endsAt). Unset: 5 x resend_interval.
    stale_after: Duration | None = None
    username: str | None = None  # basic auth
    password: Secret | None = None
    bearer_token: Secret | None = None
    ca_file: InputFile | None = None  # for https:// URLs signed by a private CA
    max_alerts: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500  # alerts per POST
    supports_fallback: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.urls or len(self.urls) > 16:
            raise FieldError("urls", "give between 1 and 16 Alertmanager URLs")
        for i, url in enumerate(self.urls):
            if problem := url_problem(url):
                raise FieldError(f"urls[{i}]", problem)
        if len(set(self.urls)) != len(self.urls):
            raise FieldError("urls", "a URL is listed twice")
        if self.resolve_timeout is not None and self.resolve_timeout <= self.resend_interval:
            raise FieldError("resolve_timeout", "must exceed resend_interval, or Alertmanager "
                             "resolves a firing alert between two resends")
        if self.stale_after is not None and self.stale_after < 2 * self.resend_interval:
            raise FieldError("stale_after", "must be at least 2 x resend_interval, or a "
                             "late renewal from the engine lets a firing alert expire")
        if self.username is not None and (":" in self.username or
                                          not self.username.isprintable()):
            raise FieldError("username", "no colon or control characters (RFC 7617)")
        if self.password is not None and self.username is None:
            raise FieldError("username", "a password needs a username")
        if self.bearer_token is not None and _unsafe(self.bearer_token.reveal()):
            raise FieldError("bearer_token", "must not contain CR, LF or NUL")
        if self.bearer_token is not None and self.username is not None:
            raise FieldError("bearer_token", "use a bearer token or basic auth, not both")

    @property
    def stale_seconds(self) -> float:
        """How long a firing alert is renewed without an event from the engine."""
        if self.stale_after is not None:
            return float(self.stale_after)
        return 5 * float(self.resend_interval)

    @property
    def ends_after(self) -> float:
        """How long Alertmanager keeps an alert that is not renewed."""
        if self.resolve_timeout is not None:
            return float(self.resolve_timeout)
        return 3 * float(self.resend_interval)


def _unsafe(value: str) -> bool:
    """A header value aiohttp refuses at every request (a token file of two lines)."""
    return any(c in value for c in "\r\n\0")


def url_problem(url: str) -> str:
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "not a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an http:// or https:// URL with a host"
    if parsed.user or parsed.password:
        return "credentials do not belong in the URL (use username/password or bearer_token)"
    if parsed.query_string or parsed.fragment:
        return "no query or fragment: the base URL of an Alertmanager"
    if api := _API.search(parsed.path):  # pasted from Alertmanager's docs: posting would 404
        return (f"the base URL of an Alertmanager, without {api[0]!r}: "
                "/api/v2/alerts is added to it")
    return ""


# An API path at the end of a URL; a prefix before it (a reverse proxy) is kept.
_API = re.compile(r"/api(/v[12](/alerts)?)?/*$")


def display(url: str) -> str:
    """The URL as a metric label and in logs: no trailing slash."""
    return url.rstrip("/")
