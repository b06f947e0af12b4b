"""`[plugins.exec]`: the command (an argv, never a shell), when it runs, and its bounds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec

from agent.alertroute import AlertSinkConfig
from agent.config import Duration, FieldError


class ExecConfig(AlertSinkConfig):
    command: list[str] = msgspec.field(default_factory=list)  # argv; [0] an absolute path
    interval: Duration = Duration(60.0)  # bounds `timeout` (a shared key), nothing else here
    on_resolve: bool = False  # run again when the alert resolves
    on_renewal: bool = False  # run on every renewal of a firing alert, not only the first
    repeat_interval: Duration | None = None  # run again for a still-firing alert this often
    group_by: list[str] = msgspec.field(default_factory=list)  # one run per group of alerts
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    output_bytes: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 4096  # logged per run
    durable: bool = False  # an action is not replayed after a restart

    def __post_init__(self) -> None:
        if not self.timeout:  # a unit restart takes longer than the shared 5 s default
            self.timeout = Duration(min(30.0, self.interval))
        super().__post_init__()
        if self.enabled and not self.command:
            raise FieldError("command", "required: the program and its arguments, as a list")
        if self.command and not self.command[0].startswith("/"):
            raise FieldError("command", "the program must be an absolute path (no PATH search)")
        if any("\0" in arg for arg in self.command):
            raise FieldError("command", "an argument contains a NUL byte")
        if self.enabled and (problem := program_problem(self.command[0])):
            raise FieldError("command", problem)


def program_problem(program: str) -> str:
    """Why `program` cannot run, found by `inferwatch check` rather than at the incident the
    command was meant for ("" when it can)."""
    path = Path(program)
    if not path.is_file():
        return f"{program}: no such file" if not path.exists() else f"{program}: not a file"
    if not os.access(path, os.X_OK):
        return f"{program}: not executable (chmod +x it)"
    return ""
