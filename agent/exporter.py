"""The /metrics endpoint: loopback by default, optional TLS and bcrypt basic auth.

Served by `agent.httpd` on asyncio streams, not aiohttp: the host-only agent then never
imports aiohttp (~9 MiB of RSS); plugins that need an HTTP client or server import it.

Content negotiation follows prometheus-client: OpenMetrics when the scraper asks for it (as
Prometheus does), the classic text format otherwise (what promtool and curl read).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import gzip
import hashlib
import hmac
import ssl
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import structlog

from agent.config import PrometheusSection, parse_listen
from agent.errors import StartupError
from agent.exposition import Exposition
from agent.httpd import HttpServer, Request, Response, server_tls

log = structlog.get_logger("inferwatch.exporter")
_AUTH_CACHE_SIZE = 64
# bcrypt reads at most 72 bytes of a password (bcrypt 5 raises beyond): a longer one is refused.
MAX_PASSWORD_BYTES = 72
# bcrypt checks running or queued at once; beyond this a request is refused without one, so
# a flood of wrong passwords costs one core at most and never the monitors' worker threads.
MAX_PENDING_CHECKS = 4


class BasicAuth:
    """bcrypt is deliberately slow (~50 ms); successful checks are remembered by a keyed digest.

    Checks run on a thread of their own, a few at a time; the rest are refused at once.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self.refused = 0  # wrong, unknown or malformed credentials
        self.throttled = 0  # refused unchecked: too many checks in flight

    async def allowed(self, header: str | None) -> bool:
        user, password = _parse_basic(header)
        hashed = self._users.get(user or "")
        if user is None or password is None or hashed is None or \
                len(password.encode()) > MAX_PASSWORD_BYTES:
            self.refused += 1
            return False
        key = hmac.digest(hashed, f"{user}:{password}".encode(), hashlib.sha256)
        if key in self._ok:
            self._ok.move_to_end(key)
            return True
        if not await self._check(password.encode(), hashed):
            return False
        self._ok[key] = None
        if len(self._ok) > _AUTH_CACHE_SIZE:
            self._ok.popitem(last=False)
        return True

    async def _check(self, password: bytes, hashed: bytes) -> bool:
        if self._pending >= MAX_PENDING_CHECKS:
            self.throttled += 1
            return False
        self._pending += 1
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="bcrypt")
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._pool, bcrypt.checkpw, password, hashed)
        finally:
            self._pending -= 1
        self.refused += not ok
        return bool(ok)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _parse_basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


class Exporter:
    def __init__(
        self, settings: PrometheusSection, exposition: Exposition, ready: Callable[[], bool],
        plugin_routes: dict[str, Callable[[Request], Response]] | None = None,
    ) -> None:
        self.settings = settings
        self._exposition = exposition
        self._ready = ready
        self._auth = BasicAuth(settings.basic_auth_users) if settings.basic_auth_users else None
        self._runner: HttpServer | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._routes: dict[str, Callable[[Request], Response]] = {
            "/metrics": self._metrics, "/-/healthy": self._healthy, "/-/ready": self._readyz,
            "/": self._index,
        }
        # Paths plugins serve (PluginContext.serve), shared with the agent: read per request.
        self._plugin_routes = plugin_routes if plugin_routes is not None else {}

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        tls = self._tls_context = self._tls(self.settings)  # a bad certificate: nothing bound
        self._runner = HttpServer(self._handle, ssl_context=tls)
        host, port = parse_listen(self.settings.listen)
        try:
            await self._runner.start(host or None, port)
        except OSError as exc:
            await self.stop()
            hint = " (another process listens there)" if exc.errno == errno.EADDRINUSE else ""
            raise StartupError(
                f"prometheus.listen: cannot listen on {self.settings.listen}: "
                f"{exc.strerror}{hint}"
            ) from None

    async def stop(self) -> None:
        if self._auth is not None:
            self._auth.close()
        if self._runner is not None:
            await self._runner.stop()
            self._runner = None

    def updatable(self, settings: PrometheusSection) -> bool:
        """True when `settings` can apply to this running listener without a new socket."""
        return (self.running and settings.enabled and settings.listen == self.settings.listen
                and bool(settings.tls_cert_file) == bool(self.settings.tls_cert_file))

    def update(self, settings: PrometheusSection) -> None:
        """Same socket, new users and certificate: the next request and handshake use them.
        A certificate that does not load raises StartupError and changes nothing."""
        if self._tls(settings) is not None and self._tls_context is not None:  # files proven
            self._tls_context.load_cert_chain(str(settings.tls_cert_file),
                                              str(settings.tls_key_file))
        old, self._auth = self._auth, (BasicAuth(settings.basic_auth_users)
                                       if settings.basic_auth_users else None)
        if old is not None:
            old.close()  # its own checking thread
        self.settings = settings

    @staticmethod
    def _tls(settings: PrometheusSection) -> ssl.SSLContext | None:
        return server_tls(settings.tls_cert_file, settings.tls_key_file,
                          "prometheus.tls_cert_file")

    async def _handle(self, request: Request) -> Response:
        if self._auth is not None and not await self._auth.allowed(
                request.header("Authorization")):
            return _text(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="inferwatch"'})
        route = self._routes.get(request.path) or self._plugin_routes.get(request.path)
        if route is None:
            return _text(404, "Not Found")
        try:
            return route(request)
        except Exception as exc:  # a scrape gets a 500, the agent goes on
            log.error("cannot serve the request", path=request.path, exc_info=exc)
            return _text(500, "Internal Server Error")

    def _metrics(self, request: Request) -> Response:
        body, content_type = self._exposition.render(request.header("Accept"))
        headers = {"Content-Type": content_type}
        if "gzip" in request.header("Accept-Encoding"):
            body = gzip.compress(body, compresslevel=6)
            headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(200, body, headers)

    def _healthy(self, _: Request) -> Response:
        return _text(200, "OK")

    def _readyz(self, _: Request) -> Response:
        ready = self._ready()
        return _text(200, "OK") if ready else _text(503, "starting")

    def _index(self, _: Request) -> Response:
        return _text(200, "inferwatch agent: see /metrics")


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, f"{text}\n".encode(),
                    {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})
