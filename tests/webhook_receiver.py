"""A real HTTP(S) webhook receiver for tests: verifies signatures as docs/sinks.md says to.

It runs aiohttp on its own loop in a thread, so synchronous tests (the agent as a subprocess)
and async ones alike can use it. `answers` scripts the status codes of the next requests
(then 200); `delay` holds each answer back (a slow receiver).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.helpers import free_port

TOLERANCE = 300  # seconds a signed timestamp may be off, as the docs' example allows


def verify(secret: bytes, headers: Any, body: bytes, now: float | None = None) -> bool:
    """The check docs/sinks.md shows receivers: HMAC over `<timestamp>.<body>`, fresh."""
    stamp = headers.get("X-Inferwatch-Timestamp", "")
    given = headers.get("X-Inferwatch-Signature", "")
    if not stamp.isdigit() or abs((now or time.time()) - int(stamp)) > TOLERANCE:
        return False
    mac = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, f"sha256={mac}")


class Receiver:
    def __init__(self, secret: bytes | None = None, tls: tuple[Path, Path] | None = None,
                 port: int | None = None) -> None:
        self.secret, self.tls = secret, tls
        self.port = port or free_port()
        self.answers: list[int] = []
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.requests.append((dict(request.headers), body))
        if self.secret is not None and not verify(self.secret, request.headers, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            decoded = json.loads(body)
            self.events.extend(decoded if isinstance(decoded, list) else [decoded])
        return web.Response(status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()

    def start(self) -> Receiver:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise AssertionError("the webhook receiver did not start")
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = None


@contextmanager
def receiving(**kwargs: Any) -> Iterator[Receiver]:
    receiver = Receiver(**kwargs).start()
    try:
        yield receiver
    finally:
        receiver.stop()
