"""`[plugins.logs]`: inputs (globs or journald), redaction, and outputs by type."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from agent.broker import topic_problem
from agent.config import ConfigPath, Duration, FieldError, InputFile, PluginConfig, Secret
from agent.redact import DEFAULT_RULES, RedactSettings, check_names

KiB, MiB = 1 << 10, 1 << 20
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class LogInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[[plugins.logs.inputs]]`: files by glob (`paths`) or the journal (`journald = true`)."""

    name: str = ""  # default: input<N>; names the checkpoint file and the metrics
    paths: list[ConfigPath] = msgspec.field(default_factory=list)  # relative: config's folder
    exclude: list[str] = msgspec.field(default_factory=list)  # name suffixes never followed
    journald: bool = False
    journal_args: list[str] = msgspec.field(default_factory=list)  # e.g. ["-u", "nginx"]
    redact: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_RULES))
    multiline_start: str = ""  # a regex: a line matching it starts a record
    multiline_timeout: Duration = Duration(1.0)  # a record with no next line ships after this
    max_line_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * MiB)] = 256 * KiB
    rotate_wait: Duration = Duration(5.0)  # a rotated file is drained for this long
    start_at: Literal["beginning", "end"] = "beginning"  # files found with no checkpoint
    max_files: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000  # followed at once
    # Symlinks the globs find: "within" their glob's directory, "follow" any, or "skip".
    symlinks: Literal["within", "follow", "skip"] = "within"
    parse: Literal["auto", "json", "none"] = "auto"  # auto: JSON objects parsed, others kept
    keep: list[str] = msgspec.field(default_factory=list)  # regexes: only matching lines ship
    drop: list[str] = msgspec.field(default_factory=list)  # regexes: matching lines never ship
    debug_lines_per_second: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0: no limit

    def __post_init__(self) -> None:
        if bool(self.paths) == self.journald:
            raise FieldError("paths", "give paths (globs) or journald = true, one of the two")
        if self.name and not _NAME.match(self.name):
            raise FieldError("name", "1-32 of a-z, 0-9, _ and -, starting with a letter")
        _regex("multiline_start", self.multiline_start)
        if self.multiline_start and self.multiline_timeout >= self.rotate_wait:
            raise FieldError("multiline_timeout", "must be shorter than rotate_wait, or a "
                             "rotated file could close with a record still gathering")
        for key in ("keep", "drop"):
            for i, pattern in enumerate(getattr(self, key)):
                _regex(f"{key}[{i}]", pattern)


class LogOutput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[[plugins.logs.outputs]]`: one receiver, with its own durable outbox."""

    type: Literal["file", "syslog", "mqtt", "loki"]
    name: str = ""  # default: the type (then type2, ...)
    path: ConfigPath | None = None  # file
    fsync: bool = True  # file: fsync before the outbox lets go of the lines
    host: str = "127.0.0.1"  # syslog, mqtt
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # syslog 514/6514, mqtt 1883/8883
    tls: bool = False
    ca_file: InputFile | None = None
    cert_file: InputFile | None = None
    key_file: InputFile | None = None
    tls_verify: bool = True
    facility: Annotated[int, msgspec.Meta(ge=0, le=23)] = 16  # syslog: local0
    app_name: str = "inferwatch"  # syslog APP-NAME
    topic: str = "inferwatch/v1/{host}/logs"  # mqtt
    qos: Literal[1, 2] = 1
    username: str | None = None
    password: Secret | None = None
    url: str = ""  # loki: http://host:3100 (the push path is added)
    labels: dict[str, str] = msgspec.field(default_factory=dict)  # loki stream labels
    tenant: str = ""  # loki X-Scope-OrgID
    timeout: Duration = Duration(10.0)
    outbox_max_bytes: Annotated[int, msgspec.Meta(ge=MiB)] = 1024 * MiB
    outbox_max_age: Duration = Duration(7 * 86400.0)
    outbox_sync: Literal["full", "normal"] = "full"

    def __post_init__(self) -> None:
        if self.name and not _NAME.match(self.name):
            raise FieldError("name", "1-32 of a-z, 0-9, _ and -, starting with a letter")
        if self.type == "file" and not self.path:
            raise FieldError("path", "a file output needs a path")
        if self.type == "loki" and not self.url.startswith(("http://", "https://")):
            raise FieldError("url", "a loki output needs url = \"http(s)://host:port\"")
        if self.type == "mqtt" and (problem := topic_problem(self.topic.replace("{host}", "h"))):
            raise FieldError("topic", problem)
        if (self.cert_file is None) != (self.key_file is None):
            raise FieldError("key_file", "cert_file and key_file go together")
        if (self.ca_file or self.cert_file) and not self.tls:  # as agent.broker's rule
            raise FieldError("tls", "ca_file/cert_file are set but tls = false")
        if self.password is not None and self.username is None:
            raise FieldError("username", "a password needs a username")

    @property
    def default_port(self) -> int:
        if self.type == "mqtt":
            return self.port or (8883 if self.tls else 1883)
        return self.port or (6514 if self.tls else 514)


class LogsConfig(PluginConfig):
    enabled: bool = False
    inputs: list[LogInput] = msgspec.field(default_factory=list)
    outputs: list[LogOutput] = msgspec.field(default_factory=list)
    redaction: RedactSettings = msgspec.field(default_factory=RedactSettings)
    poll_interval: Duration = Duration(0.25)  # how often files are checked for growth
    scan_interval: Duration = Duration(2.0)  # how often the globs are expanded again
    batch_bytes: Annotated[int, msgspec.Meta(ge=4 * KiB, le=64 * MiB)] = 1 * MiB
    max_file_labels: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100  # more: file="_other"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.enabled and not (self.inputs and self.outputs):
            raise FieldError("inputs", "enabled logs need at least one input and one output")
        names = self.input_names()
        if len(set(names)) != len(names):
            raise FieldError("inputs", f"input names must differ: {names}")
        outs = self.output_names()
        if len(set(outs)) != len(outs):
            raise FieldError("outputs", f"output names must differ: {outs}")
        for i, item in enumerate(self.inputs):
            if problem := check_names(item.redact, self.redaction):
                raise FieldError(f"inputs[{i}].redact", problem)

    def input_names(self) -> list[str]:
        return [item.name or f"input{i}" for i, item in enumerate(self.inputs)]

    def output_names(self) -> list[str]:
        names: list[str] = []
        for item in self.outputs:
            name = item.name or item.type
            n = 2
            while not item.name and name in names:
                name, n = f"{item.type}{n}", n + 1
            names.append(name)
        return names


def _regex(key: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise FieldError(key, f"invalid regex: {exc}") from None
