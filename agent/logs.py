"""structlog set-up: JSON lines for journald, a console renderer on a TTY, secrets redacted.

Tracebacks are logged without frame locals: a local may be a password being checked, a
token, or a dict of request headers, and no key-based redaction can see inside a frame.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

_SENSITIVE = ("password", "passwd", "secret", "token", "authorization", "api_key")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


_MIN_HIDDEN = 4  # shorter values would mask ordinary words; such a secret is weak anyway
_hidden: set[str] = set()
_hidden_pattern: re.Pattern[str] | None = None
_hidden_lock = threading.Lock()
_tracebacks = structlog.processors.ExceptionRenderer(
    ExceptionDictTransformer(show_locals=False, use_rich=False))


def hide(value: str) -> None:
    """Remember a credential's value: it is masked wherever it appears in a log line, even
    inside an exception's message (config.Secret calls this when a secret is resolved)."""
    global _hidden_pattern  # noqa: PLW0603 - one registry per process, like the logger
    if len(value) < _MIN_HIDDEN or value in _hidden:
        return
    with _hidden_lock:
        _hidden.add(value)
        ordered = sorted(_hidden, key=len, reverse=True)
        _hidden_pattern = re.compile("|".join(map(re.escape, ordered)))


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Belt and braces: Secret objects print as ***, and so does any key that sounds secret."""
    for key in event:
        if any(word in key.lower() for word in _SENSITIVE):
            event[key] = "***"
    return event


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask every known secret value in the rendered event, tracebacks included."""
    pattern = _hidden_pattern
    if pattern is not None:
        for key, value in event.items():
            event[key] = _scrubbed(value, pattern)
    return event


def _scrubbed(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub("***", value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, pattern) for v in value]
    return value


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """`stream`: stdout (journald's) unless a command keeps stdout for its output."""
    stream = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        # plain, not rich or better-exceptions (when installed): those print frame locals.
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    # Exceptions become text or dicts here, so `scrub` sees them before the renderer.
    tail: list[Any] = [structlog.processors.format_exc_info if use_console else _tracebacks,
                       scrub]
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, tail, renderer, _LEVELS[level], stream)


def _route_stdlib(shared: list[Any], tail: list[Any], renderer: Any, level: int,
                  stream: Any) -> None:
    """Library logs (asyncio, aiohttp) come out in the same format as ours."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer,
        ],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
