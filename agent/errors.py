"""Errors plugins raise and the core turns into clear, one-line messages and exit codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.model import Event

EX_OK = 0
EX_DATAERR = 65  # the input was partly unreadable
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
EX_CONFIG = 78


class InferwatchError(Exception):
    """Base of every error the agent reports to users without a traceback."""

    exit_code = EX_SOFTWARE


class ConfigError(InferwatchError):
    """One or more configuration problems, each prefixed with its TOML path."""

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PluginLoadError(InferwatchError):
    """A plugin could not be imported or registered (fatal only with --strict-plugins)."""

    exit_code = EX_CONFIG


class StartupError(InferwatchError):
    """The environment refused something the config asked for: a port in use, say."""

    exit_code = EX_UNAVAILABLE


class NotReadyError(Exception):
    """Raised by a component's start() when a retry later may succeed (a device not up yet)."""


class PermanentError(Exception):
    """Raised by a component's start() when retrying cannot help; the component stays off."""


class PermanentDeliveryError(Exception):
    """Raised by a durable sink's deliver() for events no retry can deliver (an HTTP 400).

    `events` are dropped and counted (`rejected`); those in `delivered` were acknowledged;
    the rest of the batch (neither) is offered again at once. `delivered` defaults to every
    event of the batch that is not rejected. With no `events` it reports a retryable failure
    after partial progress: `delivered` are acknowledged, the rest is retried after the
    backoff (a failure counted), never sent again from the batch's start.
    """

    def __init__(self, events: Sequence[Event], *, delivered: Sequence[Event] | None = None,
                 reason: str = "") -> None:
        self.events, self.delivered = list(events), delivered
        super().__init__(reason or f"{len(self.events)} event(s) refused for good")


class UndeliverableError(Exception):
    """Raised by a row-encoding sink's encode() for an event it can never send (larger than
    the receiver takes): dropped before the outbox and counted under `reason`, which is one of
    the sink's `drop_reasons` (else counted as `rejected`)."""

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason)
