"""`POST /v1/samples` and `POST /v1/labels`: JSON arrays or NDJSON, gzip accepted.

Answers 202 with what was accepted and refused, and the first refusals with their line
numbers, so a sender can fix its data. aiohttp inflates gzip bodies itself and enforces
`max_body_bytes` on the inflated size (a gzip bomb gets 413); a client that sends too slowly
is cut off.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web

from agent.components import Service
from agent.config import parse_listen
from agent.errors import StartupError
from agent.model import Label, Sample
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import Decoded
from plugins.ingest.slices import count_in_slices, decode_in_slices
from plugins.ingest.tally import Tally

FIRST_ERRORS = 10


class IngestHttp(Service):
    def __init__(self, config: IngestConfig, tally: Tally) -> None:
        super().__init__("http")
        self.config, self.tally = config, tally
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/samples", self._samples)
        app.router.add_post("/v1/labels", self._labels)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = parse_listen(self.config.http_listen)
        try:
            await web.TCPSite(self._runner, host or None, port, reuse_address=True).start()
        except OSError as exc:
            await self.stop()
            raise StartupError(f"plugins.ingest.http_listen: cannot listen on "
                               f"{self.config.http_listen}: {exc.strerror}") from None

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _samples(self, request: web.Request) -> web.Response:
        return await self._ingest(request, Sample)

    async def _labels(self, request: web.Request) -> web.Response:
        return await self._ingest(request, Label)

    async def _ingest(self, request: web.Request, kind: type) -> web.Response:
        token = self.config.token
        if token is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(),
                f"Bearer {token.reveal()}".encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            async with asyncio.timeout(float(self.config.body_timeout)):
                body = await request.read()
        except TimeoutError:
            return web.json_response({"error": "body not received in time"}, status=408)
        self.tally.bytes += len(body)
        try:
            decoded = await decode_in_slices(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(await self._count(decoded, kind), status=202)

    async def _count(self, decoded: list[Decoded], kind: type) -> dict[str, Any]:
        if any(type(record) is not kind for record, _ in decoded):
            decoded = [(None, "wrong_endpoint") if record is not None and not isinstance(
                record, kind) else (record, why) for record, why in decoded]
        reasons = await count_in_slices(self.tally, decoded)
        errors = [{"line": number, "reason": reason}
                  for number, reason in enumerate(reasons, start=1) if reason]
        accepted = len(reasons) - len(errors)
        return {"accepted": accepted, "rejected": len(errors), "errors": errors[:FIRST_ERRORS]}
