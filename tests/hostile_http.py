"""A hostile HTTP answer for real aiohttp test servers: a 400 whose body never ends (in
practice). Clients must stop reading it early rather than hold it all in memory."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

BIG = 64 << 20  # bytes a hostile answer offers


class Tally(Protocol):
    """Whoever counts the bytes offered (a test server, read by the test's assertions)."""

    offered: int


async def huge_answer(request: web.Request, tally: Tally) -> web.StreamResponse:
    """A 400 announcing BIG bytes, streamed 1 MiB at a time into `tally.offered` until the
    client stops reading (counted as it goes, so a cancelled handler still tells)."""
    response = web.StreamResponse(status=400)
    response.content_length = BIG
    await response.prepare(request)
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(BIG // len(chunk)):
            await response.write(chunk)
            tally.offered += len(chunk)
    except (ConnectionError, RuntimeError):
        pass  # the client stopped reading: what we want
    return response
