"""Integration: can Prometheus scrape the agent, and is the agent's own config sound.

Before the agent runs, the scrape check asks whether its port is free to listen on; while
it runs, it scrapes `/metrics` as Prometheus would (an authentication challenge counts as
reachable when basic auth is configured).
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from agent.audit import AuditCheck, AuditContext, Status
from agent.config import parse_listen

WILDCARD = {"", "0.0.0.0", "::"}  # noqa: S104 - we report on it, we do not bind it
MAX_SCRAPE_BYTES = 64 << 20  # whatever answers on the port, the audit reads no more


def prometheus_check(ctx: AuditContext) -> AuditCheck:
    settings = ctx.config.prometheus
    if not settings.enabled:
        return _prom("pass", "disabled", "")
    host, port = parse_listen(settings.listen)
    exposed = host in WILDCARD and not settings.basic_auth_users
    scheme = "https" if settings.tls_cert_file else "http"
    target = "127.0.0.1" if host in WILDCARD else host
    scraped, value = _scrape(f"{scheme}://{_bracket(target)}:{port}/metrics", ctx.timeout,
                            bool(settings.basic_auth_users))
    status: Status = "fail" if scraped == "fail" else "pass"
    if scraped == "absent":
        status, value = _bindable(host, port)
    if exposed and status == "pass":
        status, value = "warn", f"{value}; on every interface without basic auth"
    fix = {"fail": f"free port {port} or change [prometheus] listen",
           "warn": "listen on an internal address, or set basic_auth_users and TLS"}
    return _prom(status, value, fix.get(status, ""))


def _prom(status: Status, value: str, fix: str) -> AuditCheck:
    return AuditCheck("integration.prometheus", status, value,
                      "scrapable: the listener answers /metrics (or its port is free)",
                      "without a scrape there are no dashboards and no metric alerts", fix)


def _scrape(url: str, timeout: float, auth: bool) -> tuple[str, str]:
    context = ssl._create_unverified_context()  # noqa: S323 - reachability, not identity
    # Straight to the listener: Prometheus does not go through $http_proxy to scrape it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as reply:
            size = len(reply.read(MAX_SCRAPE_BYTES))
            return "pass", f"{url}: HTTP {reply.status}, {size} bytes"
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 401 and auth:
            return "pass", f"{url}: HTTP 401 (basic auth configured)"
        return "fail", f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError):
            return "absent", ""
        return "fail", f"{url}: {reason}"


def _bindable(host: str, port: int) -> tuple[Status, str]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return "fail", f"agent not answering and {host}:{port} unavailable: {exc.strerror}"
    return "pass", f"agent not running; {host or '*'}:{port} is free to listen on"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def config_checks(path: Path | None, problems: list[str], plugin_errors: list[str],
                  state_dir: str) -> list[AuditCheck]:
    """The `inferwatch check` findings, without creating state_dir (an audit changes nothing)."""
    where = str(path or "built-in defaults")
    shown = "; ".join(problems)[:2000]
    checks = [AuditCheck(
        "config", "fail" if problems else "pass",
        f"{where}: {len(problems)} problems: {shown}" if problems else f"{where}: valid",
        "no errors from `inferwatch check`",
        "an invalid config stops the agent at start (exit 78)",
        "fix each key named above; `inferwatch check` lists them" if problems else "")]
    if plugin_errors:
        checks.append(AuditCheck(
            "config.plugins", "warn", "; ".join(plugin_errors)[:2000], "every plugin loads",
            "a plugin that fails to load is skipped: its telemetry is missing",
            "reinstall or remove the plugin (`inferwatch plugins` shows why)"))
    if not problems:
        checks.append(_state_dir(Path(state_dir)))
    return checks


def _state_dir(path: Path) -> AuditCheck:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    ok = os.access(probe, os.W_OK | os.X_OK)
    value = f"{path}{'' if probe == path else f' (to be created in {probe})'}"
    return AuditCheck(
        "config.state_dir", "pass" if ok else "fail",
        f"{value}{'' if ok else ': not writable by this user'}",
        "writable by the agent's user", "the outbox, checkpoints and references live there",
        "" if ok else "StateDirectory=inferwatch in the unit, or chown the directory")
