"""POSTs event envelopes, signed, and says which failures are worth a retry.

The core's durable delivery (agent/delivery.py) feeds deliver() from this sink's outbox:
returning acknowledges the batch, raising has it retried with backoff, and
PermanentDeliveryError drops what a receiver refused for good (4xx other than 408 and 429).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections import Counter
from collections.abc import Sequence

import aiohttp
import msgspec
import structlog

from agent import __version__
from agent.components import Sink
from agent.errors import PermanentDeliveryError
from agent.model import Event
from plugins.webhook import amformat
from plugins.webhook.config import WebhookConfig

log = structlog.get_logger("inferwatch")

SIGNATURE = "X-Inferwatch-Signature"
TIMESTAMP = "X-Inferwatch-Timestamp"
RETRYABLE = frozenset({408, 429})  # and every 5xx
MAX_ANSWER = 64 << 10  # bytes of a response body read (and discarded): a receiver cannot
# make the agent hold a large answer in memory


class WebhookError(Exception):
    """A failure a later try may not have: a 5xx, 408, 429, a timeout, a lost connection."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: the timestamp is signed too,
    so a captured request cannot be replayed later with a fresh one."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def retryable(status: int) -> bool:
    return status in RETRYABLE or status >= 500


class WebhookSink(Sink):
    durable = True
    batch_size = 100
    # Each POST has its own `timeout`; this bounds a whole batch of them.
    deliver_timeout = 300.0

    def __init__(self, config: WebhookConfig, plugin: str = "webhook") -> None:
        super().__init__("webhook")
        self.config, self.plugin = config, plugin
        self.skipped: Counter[str] = Counter()  # format = "alertmanager": events not sent
        self._session: aiohttp.ClientSession | None = None
        self._encoder = msgspec.json.Encoder()
        self._secret = config.secret.reveal().encode() if config.secret else None

    async def start(self) -> None:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=float(self.config.timeout)),
            connector=aiohttp.TCPConnector(ssl=context),
            headers=self._headers(),
        )

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"inferwatch/{__version__}", **self.config.headers}
        headers.update((k, v.reveal()) for k, v in self.config.secret_headers.items())
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.reveal()}"
        return headers

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, events: Sequence[Event]) -> None:
        if self.config.format == "alertmanager":
            await self._deliver_alerts(events)
            return
        await self._send([(group, self._body(group)) for group in self._groups(events)], [])

    async def _send(self, posts: Sequence[tuple[Sequence[Event], bytes]],
                    done: list[Event]) -> None:
        """POST each body; `done` starts with events acknowledged without a request."""
        for group, body in posts:
            try:
                status = await self._post(body)
                if retryable(status):
                    raise WebhookError(f"HTTP {status} from the webhook")
            except WebhookError as exc:
                if done:  # acknowledge what got through; retry from here, not the start
                    raise PermanentDeliveryError([], delivered=done, reason=str(exc)) from exc
                raise
            if not 200 <= status < 300:
                raise PermanentDeliveryError(group, delivered=done,
                                             reason=f"HTTP {status} from the webhook")
            done.extend(group)

    async def _deliver_alerts(self, events: Sequence[Event]) -> None:
        """Alert events as Alertmanager notifications; the rest acknowledged unsent, counted
        (routing already keeps other kinds out: `match` is checked at config time)."""
        pairs, unsent, reasons = [], [], Counter[str]()
        for event in events:
            alert, reason = amformat.wanted(event, self.plugin, renewals=False)
            if alert is None:
                unsent.append(event)
                reasons[reason] += 1
                if reason in ("malformed", "not_alert"):
                    log.warning("event not sent as an Alertmanager alert", id=event.id,
                                kind=event.kind, reason=reason)
                continue
            pairs.append((event, alert))
        size = self.config.max_batch if self.config.batch else 1
        posts = []
        for group in amformat.by_alertname(pairs, size):
            body = amformat.payload([a for _, a in group], self.config.receiver,
                                    self.config.external_url)
            posts.append(([e for e, _ in group], self._encoder.encode(body)))
        try:
            await self._send(posts, unsent)
        except PermanentDeliveryError:
            self.skipped.update(reasons)  # acknowledged with the refusal: counted once
            raise
        self.skipped.update(reasons)  # a retried batch is counted when it is acknowledged

    def _groups(self, events: Sequence[Event]) -> list[Sequence[Event]]:
        if not self.config.batch:
            return [[event] for event in events]
        size = self.config.max_batch
        return [events[i:i + size] for i in range(0, len(events), size)]

    def _body(self, group: Sequence[Event]) -> bytes:
        return self._encoder.encode(list(group) if self.config.batch else group[0])

    async def _post(self, body: bytes) -> int:
        if self._session is None:
            raise WebhookError("not started")
        headers = {"Content-Type": "application/json"}
        if self._secret is not None:
            stamp = str(int(time.time()))
            headers[TIMESTAMP] = stamp
            headers[SIGNATURE] = signature(self._secret, stamp, body)
        try:
            async with self._session.post(self.config.url, data=body, headers=headers,
                                          allow_redirects=False) as response:
                await response.content.read(MAX_ANSWER)  # unread beyond: not kept alive
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WebhookError(f"{type(exc).__name__}: {exc}" if str(exc)
                               else type(exc).__name__) from None
