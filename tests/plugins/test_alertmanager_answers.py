"""What an Alertmanager (or whatever answers at its URL) may send back: a redirect elsewhere,
a huge body. Against a real aiohttp server; the credentials stay with the configured URL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config import build_config
from plugins.alertmanager.config import AlertmanagerConfig
from plugins.alertmanager.held import HeldAlerts
from plugins.alertmanager.sender import DeliveryError, Sender
from plugins.alertmanager.sink import AlertStore
from tests.fixtures.iwtest.alerts import alert_event
from tests.hostile_http import BIG, huge_answer

PASSWORD = "am-redirect-s3cret"  # a test value looked for on the wire


class Servers:
    """`am` answers as the test says; `other` (another origin) records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.offered = 0
        self.answer = "redirect"
        self.am = self.other = ""

    async def am_handler(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        if self.answer == "redirect":
            raise web.HTTPTemporaryRedirect(f"{self.other}/api/v2/alerts")
        if self.answer == "found":
            raise web.HTTPFound(f"{self.other}/api/v2/alerts")
        return await huge_answer(request, self)

    async def other_handler(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.headers.get("Authorization")))
        return web.Response(text="ok")


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    found = Servers()
    runners = []
    for handler in (found.am_handler, found.other_handler):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
    found.am = f"http://127.0.0.1:{runners[0].addresses[0][1]}"
    found.other = f"http://localhost:{runners[1].addresses[0][1]}"  # another origin
    yield found
    for runner in runners:
        await runner.cleanup()


async def _sender(tmp_path: Path, url: str, **keys: Any) -> Sender:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    config = build_config(
        {"plugins": {"alertmanager": {"enabled": True, "urls": [url], "timeout": "10s",
                                      **keys}}},
        {"alertmanager": AlertmanagerConfig}, base_dir=tmp_path).plugins["alertmanager"]
    assert isinstance(config, AlertmanagerConfig)
    held = HeldAlerts(tmp_path / "held.db", [url], 100)
    held.apply(alert_event("Redirected", starts_at="2026-01-01T00:00:00.000Z"),
               time.time())
    sender = Sender(config, AlertStore(held), url, 0)
    await sender.start()
    return sender


@pytest.mark.parametrize("answer", ["redirect", "found"])
async def test_a_redirect_is_a_failure_and_takes_no_credentials_along(
        servers: Servers, tmp_path: Path, answer: str) -> None:
    servers.answer = answer
    sender = await _sender(tmp_path, servers.am, username="agent",
                           password={"file": "pw"})
    try:
        with pytest.raises(DeliveryError):
            await sender.flush()
    finally:
        await sender.stop()
    assert servers.seen == [], "nothing followed the redirect (no password, no alert lost)"
    assert sender.sent == 0
    assert sender.store.held.pending(servers.am)[0] == 1, "still held, retried later"


async def test_a_huge_answer_is_not_read_whole(servers: Servers, tmp_path: Path) -> None:
    servers.answer = "huge"
    sender = await _sender(tmp_path, servers.am)
    try:
        await sender.flush()  # a 400: counted as rejected
    finally:
        await sender.stop()
    assert sender.errors["rejected"] == 1
    assert servers.offered < BIG // 2, f"{servers.offered} bytes were read of the answer"
