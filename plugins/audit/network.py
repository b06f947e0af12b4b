"""Network: the host's interfaces, and every endpoint the configuration names.

Endpoints are found by walking each enabled plugin's typed config: a table with `host` and
`port` (or `broker_port`; 0 beside a `tls` flag is MQTT's default port), and URL strings
in keys ending in `url`, `urls`, `uri` or `uris`. A new plugin with such keys is audited
without code of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import msgspec

from agent.audit import AuditCheck, AuditContext, Status
from agent.config import flattened
from plugins.audit import threads

MIN_SPEED_MBPS = 10_000
MIN_MTU = 1280  # IPv6's minimum; clouds run 1460 or 1500, overlays less
RTT_WARN = 0.050  # seconds to open a TCP connection
MAX_INTERFACES, MAX_ENDPOINTS = 16, 32
RESOLVE_GRACE = 1.0  # seconds past connect_timeout for name resolution
DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883, "tcp": 0}
MQTT_PORTS = {False: 1883, True: 8883}  # `port = 0` beside `tls`: MQTT's defaults
Endpoint = tuple[str, str, int]  # (config path, host, port)


def network_checks(ctx: AuditContext, connect_timeout: float) -> Iterator[AuditCheck]:
    yield from _interfaces(ctx)
    yield from _endpoints(ctx, endpoints(ctx)[:MAX_ENDPOINTS], connect_timeout)


def _interfaces(ctx: AuditContext) -> Iterator[AuditCheck]:
    physical = sorted(p for p in ctx.path("/sys/class/net").glob("*")
                      if (p / "device").exists())[:MAX_INTERFACES]
    up = [p for p in physical if _read(p / "operstate") == "up"]
    yield AuditCheck(
        "network.interfaces", "pass" if up else "warn",
        ", ".join(p.name for p in up) or "no physical interface up", ">= 1 physical interface up",
        "requests, model downloads and telemetry all leave through these",
        "" if up else "bring a physical interface up (a VM's virtio NIC counts once it is up)")
    for iface in up:
        yield _interface(iface.name, _read(iface / "speed"), _read(iface / "mtu"))


def _interface(name: str, speed_text: str, mtu_text: str) -> AuditCheck:
    speed = int(speed_text) if speed_text.lstrip("-").isdigit() else -1
    mtu = int(mtu_text) if mtu_text.isdigit() else 0
    slow = 0 < speed < MIN_SPEED_MBPS
    shown = f"{speed} Mb/s" if speed > 0 else "speed not reported (virtual NIC)"
    return AuditCheck(
        f"network.{name}", "warn" if slow or 0 < mtu < MIN_MTU else "pass",
        f"{shown}, MTU {mtu}", f">= {MIN_SPEED_MBPS // 1000} Gb/s; MTU >= {MIN_MTU}",
        "model downloads and request fan-in are bounded by the slowest link; a tiny MTU "
        "fragments every large request", "a faster link or a fixed negotiation (ethtool)"
        if slow else f"raise the MTU (ip link set {name} mtu 1500)" if 0 < mtu < MIN_MTU else "")


def endpoints(ctx: AuditContext) -> list[Endpoint]:
    found: list[Endpoint] = []
    for name, section in sorted(ctx.config.plugins.items()):
        if section.enabled:
            _walk(section, f"plugins.{name}", found)
    return sorted(set(found))


def _walk(node: Any, path: str, found: list[Endpoint]) -> None:
    flat = flattened(node)  # fields whose keys are this table's (the mqtt plugin's broker)
    if isinstance(node, msgspec.Struct):
        node = msgspec.structs.asdict(node)
    if isinstance(node, dict):
        port = node.get("broker_port") or node.get("port")
        if port == 0 and isinstance(node.get("tls"), bool):  # 0: the protocol's default
            port = MQTT_PORTS[node["tls"]]
        if isinstance(node.get("host"), str) and isinstance(port, int) and port:
            found.append((path, node["host"], port))
        for key, value in node.items():
            child = path if key in flat else f"{path}.{key}"
            if isinstance(key, str) and key.endswith(("url", "urls", "uri", "uris")):
                found.extend(_urls(value, child))
            elif isinstance(value, dict | list | msgspec.Struct):
                _walk(value, child, found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", found)


def _urls(value: Any, path: str) -> list[Endpoint]:
    urls = value if isinstance(value, list) else [value]
    found = []
    for i, url in enumerate(urls):
        if not isinstance(url, str) or "://" not in url:
            continue
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
        if parts.hostname and port:
            found.append((f"{path}[{i}]" if isinstance(value, list) else path,
                          parts.hostname, port))
    return found


def _endpoints(ctx: AuditContext, targets: list[Endpoint],
               timeout: float) -> Iterator[AuditCheck]:
    """Every endpoint at once, each in a daemon thread: a resolver that hangs (getaddrinfo
    ignores socket timeouts) costs one failed check, not the audit or the process's exit."""
    futures = [threads.submit(f"connect.{i}", ctx.probes.connect, host, port, timeout)
               for i, (_, host, port) in enumerate(targets)]
    deadline = time.monotonic() + timeout + RESOLVE_GRACE
    for (path, host, port), future in zip(targets, futures, strict=True):
        yield _endpoint(path, f"{host}:{port}", future, deadline)


def _endpoint(path: str, address: str, future: Future[float], deadline: float) -> AuditCheck:
    try:
        rtt: float | None = future.result(timeout=max(0.0, deadline - time.monotonic()))
        problem = ""
    except TimeoutError:
        rtt, problem = None, "no answer (name resolution or connect hung)"
    except OSError as exc:
        rtt, problem = None, exc.strerror or str(exc) or type(exc).__name__
    status: Status = "fail" if rtt is None else "warn" if rtt > RTT_WARN else "pass"
    value = f"{address}: {problem}" if rtt is None else f"{address}: {rtt * 1000:.1f} ms"
    return AuditCheck(
        f"network.endpoint.{path}", status, value,
        f"reachable, TCP connect <= {RTT_WARN * 1000:.0f} ms",
        "events, alerts and logs wait in the outbox while this endpoint is unreachable",
        {"fail": f"open the route and firewall to {address}, or fix `{path}`",
         "warn": "a closer endpoint (same region or rack)"}.get(status, ""))


def _read(path: Any) -> str:
    try:
        return str(path.read_text(errors="replace").strip())
    except OSError:
        return ""
