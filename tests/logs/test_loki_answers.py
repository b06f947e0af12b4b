"""What answers at a Loki URL may send back: a redirect, a huge body. Against a real aiohttp
server; a push counts as shipped only when the push endpoint itself took it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agent.config import Secret
from plugins.logs.config import LogOutput
from plugins.logs.outputs.base import Chunk, OutputDown
from plugins.logs.outputs.loki import LokiSender
from tests.hostile_http import BIG, huge_answer


class Server:
    def __init__(self) -> None:
        self.answer = "found"
        self.gets = 0
        self.offered = 0
        self.url = ""
        self.auth: list[str] = []

    async def push(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.auth.append(request.headers.get("Authorization", ""))
        if self.answer == "ok":
            return web.Response(status=204)
        if self.answer == "found":
            raise web.HTTPFound("/elsewhere")  # a POST followed as a GET
        return await huge_answer(request, self)

    async def elsewhere(self, _request: web.Request) -> web.Response:
        self.gets += 1
        return web.Response(text="a login page")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    found = Server()
    app = web.Application()
    app.router.add_post("/loki/api/v1/push", found.push)
    app.router.add_get("/elsewhere", found.elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield found
    await runner.cleanup()


def _sender(url: str) -> LokiSender:
    box: Any = None  # send() never touches the outbox
    return LokiSender("loki", box, LogOutput(type="loki", url=url), host="h")


CHUNKS = [Chunk(input="app", path="/var/log/app.log", ts=1.0, lines=[b"a line"], levels=[""])]


async def test_a_redirect_is_not_a_delivery(server: Server) -> None:
    sender = _sender(server.url)
    try:
        with pytest.raises(OutputDown) as caught:
            await sender.send(CHUNKS)
    finally:
        await sender.close()
    assert caught.value.reason == "redirect"
    assert server.gets == 0, "the redirect was not followed"


async def test_a_huge_answer_is_not_read_whole(server: Server) -> None:
    server.answer = "huge"
    sender = _sender(server.url)
    try:
        await sender.send(CHUNKS)  # a 400: refused for good, counted
    finally:
        await sender.close()
    assert sender.rejected == 1
    assert server.offered < BIG // 2, f"{server.offered} bytes were read of the answer"


async def test_basic_auth_is_sent(server: Server) -> None:
    """`username` and `password` were accepted for a loki output and never sent: behind an
    authenticating proxy every push got a 401, and the lines were dropped as refused."""
    server.answer = "ok"
    box: Any = None
    config = LogOutput(type="loki", url=server.url, username="shipper",
                       password=Secret("loki-pw-123", "env:LOKI_PW"))
    sender = LokiSender("loki", box, config, host="h")
    try:
        await sender.send(CHUNKS)
    finally:
        await sender.close()
    assert server.auth == ["Basic " + base64.b64encode(b"shipper:loki-pw-123").decode()]
    assert sender.rejected == 0
