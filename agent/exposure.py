"""Settings that work but expose something: warned about by `inferwatch check` and at start.

Each warning names its TOML path. They are not errors: a lab broker without TLS is a choice,
but it should be a deliberate one.
"""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from agent.config import Config, Secret, flattened, parse_listen


def warnings(config: Config) -> list[str]:
    """Every warning for a validated config, each `path: what, and what to do`."""
    sections: list[tuple[str, Any]] = [("prometheus", config.prometheus)]
    sections += [(f"plugins.{name}", section) for name, section in config.plugins.items()
                 if section.enabled]
    found: list[str] = []
    for path, section in sections:
        for where, value in _walk(path, section):
            found += _secret_file(where, value) if isinstance(value, Secret) else []
            found += _transport(where, value) if isinstance(value, msgspec.Struct) else []
    return found


def _walk(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Every value in a config struct, with its TOML path (structs, tables, arrays)."""
    yield path, value
    if isinstance(value, msgspec.Struct):
        flat = flattened(value)  # their keys are this table's: same path
        for field in msgspec.structs.fields(value):
            yield from _walk(path if field.name in flat else f"{path}.{field.encode_name}",
                             getattr(value, field.name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(f"{path}.{key}", item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(f"{path}[{i}]", item)


def _secret_file(path: str, secret: Secret) -> list[str]:
    kind, _, name = secret.source.partition(":")
    if kind != "file":
        return []
    try:
        mode = stat.S_IMODE(Path(name).stat().st_mode)
    except OSError:
        return []  # it was read a moment ago; a race is not worth a warning
    if not mode & 0o077:
        return []
    return [f"{path}: secret file {name} is readable by group or others (mode {mode:04o}); "
            f"chmod 600 it"]


def _transport(path: str, section: Any) -> list[str]:
    """Credentials or samples that would cross the network in clear, and QoS 0 ingestion."""
    found: list[str] = []
    password = getattr(section, "password", None)
    host = getattr(section, "host", None)
    if isinstance(password, Secret) and getattr(section, "tls", True) is False and \
            isinstance(host, str) and not is_loopback(host):
        found.append(f"{path}.password: sent in clear to {host} (tls = false); "
                     "set tls = true")
    listen = getattr(section, "http_listen", "") or getattr(section, "listen", "")
    if isinstance(listen, str) and listen and not getattr(section, "tls_cert_file", None) and \
            not is_loopback(_host(listen)) and _has_credentials(section):
        key = "http_listen" if getattr(section, "http_listen", "") else "listen"
        found.append(f"{path}.{key}: credentials cross the network in clear ({listen}, no "
                     "TLS); set tls_cert_file and tls_key_file")
    if getattr(section, "topics", None) and getattr(section, "qos", 1) == 0:
        found.append(f"{path}.qos: 0 is not durable: the broker keeps nothing for the agent "
                     "while it restarts or is away; use 1")
    return found


def _host(listen: str) -> str:
    """The host of `HOST:PORT`; a third-party plugin's `listen` may mean something else."""
    try:
        return parse_listen(listen)[0]
    except ValueError:
        return "localhost"  # not an address we can judge: no warning


def _has_credentials(section: Any) -> bool:
    return bool(getattr(section, "token", None) or getattr(section, "basic_auth_users", None))


def is_loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1 or `localhost`; "" is every interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
