"""structlog set-up: JSON lines for journald, a console renderer on a TTY, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SENSITIVE = ("password", "passwd", "secret", "token", "authorization", "api_key")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Belt and braces: Secret objects print as ***, and so does any key that sounds secret."""
    for key in event:
        if any(word in key.lower() for word in _SENSITIVE):
            event[key] = "***"
    return event


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
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer()
    )
    tail = [] if use_console else [structlog.processors.dict_tracebacks]
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
