"""One sender per Alertmanager: posts what it has not taken, renews what fires, backs off.

Each URL has its own task, acknowledgements and backoff, so an Alertmanager that is down
or slow never delays another (HA: every member gets every alert and the cluster dedupes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
import time
from collections import Counter
from typing import Any

import aiohttp
import msgspec
import structlog

from agent.components import Service
from plugins.alertmanager.config import AlertmanagerConfig, display
from plugins.alertmanager.payload import postable
from plugins.alertmanager.sink import AlertStore

log = structlog.get_logger("inferwatch")
BACKOFF_MIN, BACKOFF_MAX = 0.2, 30.0
MAX_ANSWER = 64 << 10  # bytes of an answer read: a receiver cannot fill the agent's memory


class DeliveryError(Exception):
    """A POST that did not get through; `reason` is a bounded metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Sender(Service):
    def __init__(self, config: AlertmanagerConfig, store: AlertStore, url: str,
                 index: int) -> None:
        super().__init__(f"sender-{index}")
        self.config, self.store, self.key, self.url = config, store, url, display(url)
        self.endpoint = f"{self.url}/api/v2/alerts"
        self.session: aiohttp.ClientSession | None = None
        self.sent_at: dict[str, float] = {}  # loop clock of the last accepted send, by episode
        self.up = False
        self.sent = self.rejected = 0
        self.errors: Counter[str] = Counter()
        self._delay = 0.0
        self._last_error = ""

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=float(self.config.timeout)),
            connector=aiohttp.TCPConnector(ssl=self._ssl()))

    def _headers(self) -> dict[str, str]:
        """Credentials as a header: aiohttp drops it on a redirect to another origin (a
        session's BasicAuth it would send there), and redirects are not followed anyway."""
        if self.config.username is not None:
            password = self.config.password.reveal() if self.config.password else ""
            pair = f"{self.config.username}:{password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        if self.config.bearer_token is None:
            return {}
        return {"Authorization": f"Bearer {self.config.bearer_token.reveal()}"}

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.config.ca_file:
            return ssl.create_default_context(cafile=self.config.ca_file)
        return True

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def run(self) -> None:
        wake = self.store.wakes[self.key]
        while True:
            wake.clear()
            try:
                await self.flush()
            except DeliveryError as exc:
                self._failed(exc)
            await self._wait(wake)

    async def flush(self) -> None:
        """Send until nothing is due; raise DeliveryError on the first failure."""
        limit, held = self.config.batch_size, self.store.held
        while True:
            now, wall = asyncio.get_running_loop().time(), time.time()
            if held.expire(wall - self.config.stale_seconds - self.config.ends_after):
                await self.store.save()
            due = held.due(self.key, self.sent_at, self.config.resend_interval, now,
                           limit=limit, fresh_after=wall - self.config.stale_seconds)
            if not due:
                return
            body = [alert for _, episode, acked in due
                    for alert in postable(episode, acked, time.time(), self.config.ends_after)]
            versions = [(key, episode.version) for key, episode, _ in due]  # before the await
            await self._post(body)
            self._accepted(due, now)
            if held.ack(self.key, versions):
                await self.store.save()
            if len(due) < limit:
                return

    def _accepted(self, due: list[Any], now: float) -> None:
        alerts = self.store.held.state.alerts
        if len(self.sent_at) > len(alerts):  # forgotten episodes: bounded over months too
            self.sent_at = {k: t for k, t in self.sent_at.items() if k in alerts}
        for key, _, _ in due:
            self.sent_at[key] = now
        self.sent += len(due)
        if not self.up:
            log.info("alertmanager reachable", url=self.url)
        self.up, self._delay, self._last_error = True, 0.0, ""

    async def _post(self, body: list[dict[str, Any]]) -> None:
        assert self.session is not None  # noqa: S101 - start() comes first
        try:
            # A redirect is not followed: a 302 would turn the POST into a GET whose 200
            # looked like an acceptance, and another origin is not the configured one.
            async with self.session.post(self.endpoint, data=msgspec.json.encode(body),
                                         headers={"Content-Type": "application/json"},
                                         allow_redirects=False) as resp:
                text = (await resp.content.read(MAX_ANSWER)).decode(errors="replace")[:300]
                status = resp.status
        except TimeoutError:
            raise DeliveryError("timeout") from None
        except aiohttp.ClientSSLError as exc:
            raise DeliveryError("tls", type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError("unreachable", type(exc).__name__) from None
        if status == 400:  # Alertmanager took the valid alerts and refused the others
            self.rejected += 1
            self.errors["rejected"] += 1
            log.warning("alertmanager refused alerts", url=self.url, response=text)
        elif status >= 300:
            raise DeliveryError(_reason(status), str(status))

    def _failed(self, exc: DeliveryError) -> None:
        self.errors[exc.reason] += 1
        if self.up or str(exc) != self._last_error:  # once per change, not per retry
            log.warning("alertmanager unreachable; alerts are held and retried",
                        url=self.url, error=str(exc))
        self.up, self._last_error = False, str(exc)
        self._delay = min(BACKOFF_MAX, max(BACKOFF_MIN, self._delay * 2))

    async def _wait(self, wake: asyncio.Event) -> None:
        """Until woken by a change, the next resend, or the end of a backoff."""
        if self._delay:
            await asyncio.sleep(self._delay * random.uniform(0.8, 1.2))  # noqa: S311
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._next_resend()):
                await wake.wait()

    def _next_resend(self) -> float:
        now = asyncio.get_running_loop().time()
        firing = self.store.held.renewing(time.time() - self.config.stale_seconds)
        if not firing:
            return float(self.config.resend_interval)
        first = min(self.sent_at.get(k, 0.0) for k in firing) + self.config.resend_interval
        return max(0.05, first - now)


def _reason(status: int) -> str:
    """The bounded error label of a failed answer's status (3xx, 4xx, 5xx)."""
    if status >= 500:
        return "http_5xx"
    return "http_4xx" if status >= 400 else "redirect"
