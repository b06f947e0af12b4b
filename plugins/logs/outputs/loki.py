"""The `loki` output: Grafana Loki's push API (`POST /loki/api/v1/push`, JSON, gzip).

One stream per input and file (labels: host, input, filename, plus the configured ones);
entries carry the read time in nanoseconds, kept increasing within a push. A 2xx deletes the
lines from the outbox; 429 and 5xx are retried; another 4xx is a permanent refusal (the
chunk is dropped and counted, or it would block every line behind it).
"""

from __future__ import annotations

import base64
import gzip

import aiohttp
import msgspec
import structlog

from agent.broker import tls_context
from plugins.logs.config import LogOutput
from plugins.logs.outputs.base import Chunk, LogOutbox, OutputDown, Sender

log = structlog.get_logger("inferwatch")
PUSH_PATH = "/loki/api/v1/push"
MAX_ANSWER = 64 << 10  # bytes of an answer read
_encode = msgspec.json.Encoder().encode


def push_body(chunks: list[Chunk], host: str, labels: dict[str, str]) -> bytes:
    streams: dict[tuple[str, str], list[tuple[str, str]]] = {}
    last = 0
    for chunk in chunks:
        values = streams.setdefault((chunk.input, chunk.path), [])
        for line in chunk.lines:
            last = max(int(chunk.ts * 1e9), last + 1)
            values.append((str(last), line.decode("utf-8", "replace")))
    body = {"streams": [
        {"stream": _labels(labels, host, name, path), "values": rows}
        for (name, path), rows in streams.items()]}
    return gzip.compress(_encode(body), compresslevel=1)


def _labels(extra: dict[str, str], host: str, name: str, path: str) -> dict[str, str]:
    return {**extra, "host": host, "input": name, "filename": path}


class LokiSender(Sender):
    def __init__(self, name: str, box: LogOutbox, config: LogOutput, *, host: str) -> None:
        super().__init__(name, box)
        self.config, self.host = config, host
        self.url = config.url.rstrip("/") + PUSH_PATH
        self._session: aiohttp.ClientSession | None = None

    async def send(self, chunks: list[Chunk]) -> None:
        body = push_body(chunks, self.host, self.config.labels)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if self.config.tenant:
            headers["X-Scope-OrgID"] = self.config.tenant
        try:
            if self._session is None:
                self._session = self._open()  # a CA file that does not load: OSError
            # Not followed: a 302 makes the POST a GET, whose 200 would delete the lines.
            async with self._session.post(self.url, data=body, headers=headers,
                                          allow_redirects=False) as response:
                answer = await response.content.read(MAX_ANSWER)  # bounded, however large
                text, status = answer.decode("utf-8", "replace")[:200], response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise OutputDown("connect_error", str(exc) or type(exc).__name__) from None
        if status == 429 or status >= 500:
            raise OutputDown(f"http_{status}", text)
        if 300 <= status < 400:  # a wrong URL: the lines wait in the outbox until it is fixed
            raise OutputDown("redirect", str(status))
        if status >= 300:
            self.rejected += len(chunks)
            log.error("loki refused lines; dropped", output=self.output, status=status,
                      response=text, lines=sum(len(c.lines) for c in chunks))

    def _open(self) -> aiohttp.ClientSession:
        """The session: the output's TLS settings and basic auth (both were accepted in the
        config and ignored: a private CA failed every push, a 401 dropped the lines)."""
        config, headers = self.config, {}
        if config.username is not None:
            password = config.password.reveal() if config.password is not None else ""
            pair = base64.b64encode(f"{config.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=float(config.timeout)), headers=headers,
            connector=aiohttp.TCPConnector(ssl=tls_context(config) if config.tls else True))

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
