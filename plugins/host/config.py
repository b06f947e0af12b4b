"""`[plugins.host]`: which mounts, disks and interfaces count, and which processes to watch."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from agent.config import FieldError, PluginConfig

# Pseudo and virtual filesystems: never capacity anyone can run out of on an inference host.
PSEUDO_FILESYSTEMS = [
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore",
    "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tracefs", "tmpfs", "iso9660",
]


def _regex(value: str, key: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise FieldError(key, f"invalid regular expression: {exc}") from None


class ProcessMatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One inference-server process group; `name` is its label value, so series stay bounded."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    process_name: str | None = None
    cmdline: str | None = None
    pidfile: str | None = None
    systemd_unit: str | None = None

    def __post_init__(self) -> None:
        set_ = [k for k in ("process_name", "cmdline", "pidfile", "systemd_unit")
                if getattr(self, k) is not None]
        if len(set_) != 1:
            raise FieldError("name", "set exactly one of process_name, cmdline, pidfile, "
                                     f"systemd_unit (got {', '.join(set_) or 'none'})")
        if self.cmdline is not None:
            _regex(self.cmdline, "cmdline")


class HostConfig(PluginConfig):
    filesystem_exclude_types: list[str] = msgspec.field(
        default_factory=lambda: list(PSEUDO_FILESYSTEMS))
    mountpoint_exclude: str = r"^/(dev|proc|sys|run|snap|var/lib/(docker|kubelet|containers))($|/)"
    disk_exclude: str = r"^(loop|ram|fd|sr|zram|nbd)\d+$|^(sd[a-z]+|vd[a-z]+|xvd[a-z]+)\d+$|p\d+$"
    network_exclude: str = (
        r"^(lo|veth.*|docker\d*|br-.*|cali.*|flannel.*|cni\d*|virbr.*|tap.*|ifb\d+)$"
    )
    temperatures: bool = True
    processes: list[ProcessMatch] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("mountpoint_exclude", "disk_exclude", "network_exclude"):
            _regex(getattr(self, key), key)
        names = [p.name for p in self.processes]
        if len(set(names)) != len(names):
            raise FieldError("processes", "process names must be unique")
