"""No secret in a log line: tracebacks carry no frame locals, and known secret values are
masked wherever they appear (an exception's message included)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from agent import logs
from agent.config import Secret


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def _fail_with_a_secret_in_a_local(password: str) -> None:
    headers = {"Authorization": f"Bearer {password}"}
    raise RuntimeError(f"refused with {len(headers)} header")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_traceback_carries_no_locals(captured: io.StringIO, fmt: str) -> None:
    logs.configure("info", fmt, captured)
    password = "not-registered-" + "hunter2"  # a source line shown in the trace holds no value
    try:
        _fail_with_a_secret_in_a_local(password)
    except RuntimeError:
        structlog.get_logger().exception("component failed")
    out = captured.getvalue()
    assert "component failed" in out
    assert "_fail_with_a_secret_in_a_local" in out  # the stack is still there
    assert "not-registered-hunter2" not in out
    if fmt == "json":
        frames = json.loads(out)["exception"][0]["frames"]
        assert all("locals" not in frame for frame in frames)


def test_stdlib_loggers_get_the_same_treatment(captured: io.StringIO) -> None:
    logs.configure("info", "json", captured)
    password = "stdlib-" + "hunter2"
    try:
        _fail_with_a_secret_in_a_local(password)
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    assert "Error handling request" in captured.getvalue()
    assert "stdlib-hunter2" not in captured.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_resolved_secret_is_masked_anywhere(captured: io.StringIO, fmt: str) -> None:
    secret = Secret("s3cr3t-token-value", "env:TEST")
    logs.configure("info", fmt, captured)
    log = structlog.get_logger()
    log.warning("webhook failed", error=f"401 for Bearer {secret.reveal()}",
                nested={"list": [secret.reveal()]})
    try:
        raise ValueError(f"bad token {secret.reveal()}")
    except ValueError:
        log.exception("failed")
    logging.getLogger("paho").warning("connect with %s", secret.reveal())
    out = captured.getvalue()
    assert out.count("***") >= 4
    assert secret.reveal() not in out


def test_short_values_are_not_masked(captured: io.StringIO) -> None:
    Secret("on", "env:SHORT")  # would mask "connection", "done", ...
    logs.configure("info", "json", captured)
    structlog.get_logger().info("connection done")
    assert json.loads(captured.getvalue())["event"] == "connection done"
