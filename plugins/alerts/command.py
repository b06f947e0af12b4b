"""`inferwatch alerts [-c FILE] [--json]`: the running agent's alerts, from GET /api/v1/alerts.

Exit codes: 0 the agent answered and nothing fires; 1 at least one alert fires; 69 the agent
cannot be reached (or runs without the alerts plugin); 77 the listener refused the
credentials; 78 the config is invalid. The address, TLS and user come from the same config
the agent reads; the password from $INFERWATCH_PASSWORD (the config holds only its hash).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent.cli import config_argument
from agent.config import (
    PrometheusSection,
    build_config,
    config_path,
    read_toml,
)
from agent.errors import EX_OK, EX_UNAVAILABLE, InferwatchError

EX_FIRING = 1
EX_NOPERM = 77
ROUTE = "/api/v1/alerts"


class AgentUnreachableError(InferwatchError):
    exit_code = EX_UNAVAILABLE


class RefusedError(InferwatchError):
    exit_code = EX_NOPERM


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = subparsers.add_parser(
        "alerts", help="the running agent's alerts (exit 0 none firing, 1 firing, "
                       "69 agent unreachable)")
    config_argument(cmd)
    cmd.add_argument("--json", action="store_true", help="print the API's JSON as is")
    cmd.add_argument("--user", default="", help="basic-auth user (password from "
                     "$INFERWATCH_PASSWORD)")
    cmd.add_argument("--cacert", type=Path, default=None,
                     help="CA to verify the listener's TLS certificate (default: the "
                          "configured certificate itself)")
    cmd.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    alerts = fetch(listener(config_path(args.config)), args.user, args.cacert)
    print(json.dumps({"alerts": alerts}, indent=2) if args.json else table(alerts))
    return EX_FIRING if any(a.get("state") == "firing" for a in alerts) else EX_OK


def listener(path: Path | None) -> PrometheusSection:
    """The `[prometheus]` section alone: the command needs the listener, and a plugin section
    only the agent's `-p` plugins know must not stand in its way."""
    if path is None:
        return PrometheusSection()
    raw = read_toml(path)
    config = build_config({"prometheus": raw.get("prometheus", {})}, {}, path=path,
                          base_dir=path.parent)
    return config.prometheus


def generator_url(path: Path | None, host_id: str) -> str:
    """The API's URL as others reach it: the listener's port, this host's name when the
    listener is on every interface or loopback."""
    settings = listener(path)
    host, _, port = settings.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost"):  # noqa: S104
        host = host_id
    scheme = "https" if settings.tls_cert_file else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{ROUTE}"


def url(settings: PrometheusSection) -> str:
    host, _, port = settings.listen.rpartition(":")
    host = host.strip("[]")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host  # noqa: S104
    scheme = "https" if settings.tls_cert_file else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{ROUTE}"


def fetch(settings: PrometheusSection, user: str, cacert: Path | None) -> list[dict[str, Any]]:
    target = url(settings)
    request = urllib.request.Request(target)  # noqa: S310 - http(s) only, built above
    if user:
        token = base64.b64encode(f"{user}:{os.environ.get('INFERWATCH_PASSWORD', '')}"
                                 .encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = None
    if settings.tls_cert_file:
        context = ssl.create_default_context(cafile=str(cacert or settings.tls_cert_file))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 401:
            raise RefusedError(f"{target}: credentials refused (--user, "
                               "$INFERWATCH_PASSWORD)") from None
        hint = " (is [plugins.alerts] enabled?)" if exc.code == 404 else ""
        raise AgentUnreachableError(f"{target}: HTTP {exc.code}{hint}") from None
    except (OSError, ValueError) as exc:
        raise AgentUnreachableError(f"{target}: {getattr(exc, 'reason', exc)}") from None
    return list(body.get("alerts", [])) if isinstance(body, dict) else []


def table(alerts: list[dict[str, Any]]) -> str:
    if not alerts:
        return "no alerts"
    rows = [("STATE", "ALERTNAME", "SEVERITY", "SINCE", "LABELS", "SUMMARY")]
    for a in alerts:
        labels = a.get("labels", {})
        extra = ",".join(f"{k}={v}" for k, v in sorted(labels.items())
                         if k not in ("alertname", "severity", "host"))
        rows.append((a.get("state", ""), a.get("alertname", ""), labels.get("severity", ""),
                     a.get("startsAt", ""), extra, a.get("annotations", {}).get("summary", "")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False))
                     + "  " + str(r[-1]) for r in rows)
