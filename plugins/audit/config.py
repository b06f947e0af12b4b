"""`[plugins.audit]`: the scheduled audit, the models this host must hold, what to probe."""

from __future__ import annotations

from typing import Annotated

import msgspec

from agent.config import Duration, FieldError, PluginConfig

MiB = 1 << 20


class AuditConfig(PluginConfig):
    """`enabled` runs the audit inside the agent every `interval`; the CLI audits regardless."""

    enabled: bool = False
    interval: Duration = Duration(3600.0)
    timeout: Duration = Duration(0.0)  # unset: min(60s, interval); the whole audit
    root: str = "/"  # where /proc, /sys and /etc are read: "/host" in a container
    model_paths: list[str] = msgspec.field(default_factory=list)  # globs of model files
    model_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0  # or the size, declared
    model_server_user: str = ""  # who must be able to write the ingest socket
    probe_bytes: Annotated[int, msgspec.Meta(ge=MiB, le=1024 * MiB)] = 32 * MiB
    probe_seconds: Annotated[float, msgspec.Meta(gt=0, le=5)] = 5.0  # the storage probe's cap
    connect_timeout: Duration = Duration(2.0)  # each endpoint's reachability probe
    skip: list[str] = msgspec.field(default_factory=list)  # check names (globs) to leave out

    def __post_init__(self) -> None:
        if not self.timeout:  # an audit probes storage and endpoints: more than 5 s
            self.timeout = Duration(min(60.0, self.interval))
        super().__post_init__()
        if not self.root.startswith("/"):
            raise FieldError("root", f"must be an absolute path, got {self.root!r}")
        if self.connect_timeout > 10:
            raise FieldError("connect_timeout", "at most 10s: an audit must finish in seconds")
