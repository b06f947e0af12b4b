"""`POST /v1/samples` and `POST /v1/labels`: JSON arrays or NDJSON, gzip accepted.

Answers 202 with what was accepted and refused, and the first refusals with their line
numbers, so a sender can fix its data. Every malformed request is a 4xx with a JSON reason,
counted in `inferwatch_ingest_requests_refused_total{reason}`: 401 token, 415 encoding, 400
a body that does not inflate or in which no line is JSON, 408 too slow, 413 too large, 503
too many requests at once. aiohttp inflates gzip bodies itself and enforces `max_body_bytes`
on the inflated size (a gzip bomb gets 413).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web

from agent.components import Service
from agent.config import parse_listen
from agent.errors import StartupError
from agent.httpd import server_tls
from agent.model import Label, Sample
from plugins.ingest.config import IngestConfig
from plugins.ingest.decode import Decoded
from plugins.ingest.slices import count_in_slices, decode_in_slices
from plugins.ingest.tally import Tally

FIRST_ERRORS = 10
ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})
NOT_JSON = frozenset({"invalid_json", "invalid_utf8"})


class IngestHttp(Service):
    def __init__(self, config: IngestConfig, tally: Tally) -> None:
        super().__init__("http")
        self.config, self.tally = config, tally
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self._in_flight = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/samples", self._samples)
        app.router.add_post("/v1/labels", self._labels)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = parse_listen(self.config.http_listen)
        tls = server_tls(self.config.tls_cert_file, self.config.tls_key_file,
                         "plugins.ingest.tls_cert_file")
        try:
            await web.TCPSite(self._runner, host or None, port, reuse_address=True,
                              ssl_context=tls).start()
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
        if refusal := self._refusal(request):
            return refusal
        if self._in_flight >= self.config.max_requests:
            return self._refuse(503, "too_busy", "too many requests at once; retry shortly",
                                headers={"Retry-After": "1"})
        self._in_flight += 1
        try:
            return await self._read_and_count(request, kind)
        finally:
            self._in_flight -= 1

    def _refusal(self, request: web.Request) -> web.Response | None:
        """What can be refused from the headers alone, before a byte of the body is read."""
        token = self.config.token
        if token is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(),
                f"Bearer {token.reveal()}".encode()):
            return self._refuse(401, "unauthorized", "missing or wrong bearer token")
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ENCODINGS:
            return self._refuse(415, "unsupported_encoding",
                                "Content-Encoding must be gzip, deflate or identity")
        return None

    async def _read_and_count(self, request: web.Request, kind: type) -> web.Response:
        try:
            async with asyncio.timeout(float(self.config.body_timeout)):
                body = await request.read()
        except TimeoutError:
            return self._refuse(408, "body_timeout", "body not received in time")
        except web.HTTPRequestEntityTooLarge:
            self.tally.refused_requests["too_large"] += 1
            raise
        except (web.RequestPayloadError, ConnectionError) as exc:
            return self._refuse(400, "bad_body", f"cannot read the body: {_first_line(exc)}")
        self.tally.bytes += len(body)
        try:
            decoded = await decode_in_slices(body)
        except ValueError as exc:
            return self._refuse(400, "not_json", str(exc))
        if decoded and all(why in NOT_JSON for _, why in decoded):
            self.tally.count_many(decoded)
            return self._refuse(400, "not_json", "the body is neither a JSON array nor NDJSON "
                                f"(line 1: {decoded[0][1]})")
        return web.json_response(await self._count(decoded, kind), status=202)

    def _refuse(self, status: int, reason: str, message: str,
                headers: dict[str, str] | None = None) -> web.Response:
        self.tally.refused_requests[reason] += 1
        return web.json_response({"error": message, "reason": reason}, status=status,
                                 headers=headers)

    async def _count(self, decoded: list[Decoded], kind: type) -> dict[str, Any]:
        if any(type(record) is not kind for record, _ in decoded):
            decoded = [(None, "wrong_endpoint") if record is not None and not isinstance(
                record, kind) else (record, why) for record, why in decoded]
        reasons = await count_in_slices(self.tally, decoded)
        errors = [{"line": number, "reason": reason}
                  for number, reason in enumerate(reasons, start=1) if reason]
        accepted = len(reasons) - len(errors)
        return {"accepted": accepted, "rejected": len(errors), "errors": errors[:FIRST_ERRORS]}


def _first_line(exc: Exception) -> str:
    """aiohttp's payload errors read `400, message:\n  <why>`: the why alone."""
    return str(exc).strip().splitlines()[-1].strip()
