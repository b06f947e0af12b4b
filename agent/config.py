"""TOML configuration: one typed model per section, every problem reported at once with its path.

msgspec stops at the first error; users fixing a config want all of them, so structs are walked
field by field here and msgspec converts the leaves (which enforces `Meta` constraints).
"""

from __future__ import annotations

import codecs
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from agent import client, logs
from agent.errors import ConfigError

DEFAULT_PORT = 9879
DEFAULT_CONFIG = Path("/etc/inferwatch/agent.toml")
_INVALID: Any = object()
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|s|m|h|d)\s*)+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<sub>[^`]*)`)?$", re.DOTALL)


class FieldError(ValueError):
    """Raised from a struct's __post_init__ to blame one key rather than the whole table."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


class MultiFieldError(ValueError):
    """Several FieldError problems of one struct at once (a list of rules checked in one pass)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


# Longer is a typo, and a window or label_ttl that long overflows the dates derived from it.
MAX_DURATION = 1000 * 365 * 86400.0


class Duration(float):
    """Seconds; TOML may say `15`, `2.5`, `"500ms"`, `"1m30s"` or `"1h"`."""


def parse_duration(value: object) -> Duration:
    """Parse a number of seconds or a Go-style duration string; raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # ValueError, not TypeError: callers report every config problem through one path.
        kind = type(value).__name__
        raise ValueError(f"expected seconds or a duration like '15s', got {kind}")  # noqa: TRY004
    if isinstance(value, str):
        if not _DURATION.match(value):
            raise ValueError(f"invalid duration {value!r} (use e.g. '500ms', '15s', '1m30s')")
        value = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    if not 0 < value <= MAX_DURATION:  # NaN fails too
        raise ValueError(f"duration must be positive and at most 1000 years, got {value!r}")
    return Duration(value)


class Secret:
    """A credential resolved from `{env = "NAME"}` or `{file = "PATH"}`; never printed."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        logs.hide(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, ***)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_secret(raw: object, base_dir: Path) -> Secret:
    """Literal secrets are refused so that config files can be shared and committed safely."""
    if not isinstance(raw, dict) or len(raw) != 1 or not raw.keys() <= {"env", "file"}:
        raise ValueError('a secret must be {env = "NAME"} or {file = "PATH"}, not a literal')
    (kind, ref), = raw.items()
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"secret {kind} reference must be a non-empty string")
    if kind == "env":
        if ref not in os.environ:
            raise ValueError(f"environment variable {ref} is not set")
        return Secret(os.environ[ref], f"env:{ref}")
    path = (base_dir / ref).resolve()
    try:
        return Secret(path.read_text(encoding="utf-8").strip(), f"file:{path}")
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:  # its text would quote the secret's bytes
        raise ValueError(f"secret file {path} is not UTF-8") from None


class ConfigPath(str):
    """A path in the config: a relative one is resolved against the config file's folder
    (never the working directory, which differs between a shell and systemd)."""

    __slots__ = ()


class InputFile(ConfigPath):
    """A file the agent reads (a CA, a key, a scenario, a reference): resolved like
    `ConfigPath`, and it must exist and be readable when the config is loaded, so that
    `inferwatch check` names it with its TOML path instead of a failure at run time."""

    __slots__ = ()


def resolve_path(raw: object, base_dir: Path, tp: type[ConfigPath]) -> ConfigPath | None:
    """Resolve a path against the config's folder; for an `InputFile`, prove it readable.

    An empty string keeps its meaning of "the default" (a path) or "none" (a file)."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a path, got {_toml_type(raw)}")  # noqa: TRY004 - one path
    if not raw:
        return None if tp is InputFile else tp("")
    path = base_dir / Path(raw).expanduser()
    if tp is InputFile:
        if not path.is_file():
            raise ValueError(f"{path}: no such file" if not path.exists()
                             else f"{path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{path}: cannot read: permission denied")
    return tp(path)


LogLevel = Literal["debug", "info", "warning", "error"]


class AgentSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host_id: str = ""
    state_dir: ConfigPath = ConfigPath("")
    log_level: LogLevel = "info"
    log_format: Literal["json", "console", "auto"] = "auto"
    event_queue_size: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 10_000
    start_timeout: Duration = Duration(30.0)
    stop_timeout: Duration = Duration(10.0)
    # The agent's own budget (0: none): percent of one CPU, and resident memory.
    cpu_percent: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 0.0
    rss_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    budget_period: Duration = Duration(10.0)  # how often the agent measures itself

    def __post_init__(self) -> None:
        if not self.host_id:  # a pod's hostname is its own name: a DaemonSet passes the node's
            self.host_id = os.environ.get("INFERWATCH_HOST_ID") or socket.gethostname()
        if not self.state_dir:
            self.state_dir = ConfigPath(default_state_dir())


def default_state_dir() -> str:
    """systemd's StateDirectory= first, then the XDG location, so `make run` works unprivileged.

    The rule lives in the client SDK, whose socket search falls back to the same folder.
    """
    return client.default_state_dir()


class PrometheusSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    tls_cert_file: InputFile | None = None
    tls_key_file: InputFile | None = None
    basic_auth_users: dict[str, str] = msgspec.field(default_factory=dict)
    series_limit_per_plugin: Annotated[int, msgspec.Meta(ge=1)] = 20_000

    def __post_init__(self) -> None:
        try:
            parse_listen(self.listen)
        except ValueError as exc:
            raise FieldError("listen", str(exc)) from None
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise FieldError("tls_key_file", "tls_cert_file and tls_key_file go together")
        for user, hashed in self.basic_auth_users.items():
            if not re.match(r"^\$2[aby]\$\d\d\$.{53}$", hashed):
                raise FieldError(
                    f"basic_auth_users.{user}",
                    f"not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`, or "
                    "python3 -c 'import bcrypt, getpass; print(bcrypt.hashpw(getpass."
                    "getpass().encode(), bcrypt.gensalt(10)).decode())')",
                )


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT`; an empty host means every interface, on purpose only."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen must be HOST:PORT with a port 1-65535, got {listen!r}")
    return host.strip("[]"), int(port)


class PluginConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Keys every `[plugins.<name>]` section shares; plugins subclass it with their own keys."""

    enabled: bool = True
    interval: Duration = Duration(10.0)
    timeout: Duration = Duration(0.0)  # unset: min(5s, interval)
    # Plugins this one is useless without (a class attribute, not a key): `check` and `run`
    # warn when it is enabled and they are not.
    needs: ClassVar[tuple[str, ...]] = ()
    # Fields (structs) whose keys sit in this section itself, not in a table of their own:
    # `[plugins.mqtt] host = ...` fills MqttConfig.broker. TOML paths skip their names.
    flattened: ClassVar[tuple[str, ...]] = ()

    def warnings(self) -> list[str]:
        """Valid but doubtful settings (`key: why`), printed by `check` and logged at start."""
        return []

    def __post_init__(self) -> None:
        if not self.timeout:
            self.timeout = Duration(min(5.0, self.interval))
        if self.timeout > self.interval:
            raise FieldError(
                "timeout",
                f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)"
            )


SinkSeverity = Literal["info", "warning", "critical"]
MiB = 1 << 20


class SinkConfig(PluginConfig):
    """Keys every sink plugin shares (docs/sinks.md): which events it takes, and its outbox.

    Routing is applied by the core: a sink's deliver() sees only the events whose kind
    matches one of `match` (fnmatch globs) at `min_severity` or above. With `durable` (and a
    sink class that is durable) each accepted event is committed to the sink's own outbox
    before delivery and deleted only once deliver() returned.
    """

    match: list[str] = msgspec.field(default_factory=lambda: ["*"])
    min_severity: SinkSeverity = "info"
    durable: bool = True
    outbox_max_bytes: Annotated[int, msgspec.Meta(ge=MiB)] = 1024 * MiB
    outbox_max_age: Duration = Duration(7 * 86400.0)
    # "normal": no fsync per commit (faster; a power loss may lose the last commits, a crash
    # of the agent alone loses nothing).
    outbox_sync: Literal["full", "normal"] = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.match or any(not glob for glob in self.match):
            raise FieldError("match", 'needs at least one non-empty kind glob (all: ["*"])')


@dataclass(frozen=True)
class Config:
    path: Path | None
    agent: AgentSection
    prometheus: PrometheusSection
    plugins: dict[str, PluginConfig] = field(default_factory=dict)


def load_config(path: Path | None, models: Mapping[str, type[PluginConfig]]) -> Config:
    """Read and validate a file (None: all defaults); raise ConfigError listing every problem."""
    raw = _read_toml(path) if path is not None else {}
    base_dir = path.parent if path is not None else Path.cwd()
    return build_config(raw, models, path=path, base_dir=base_dir)


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`; every way it can be unreadable is a ConfigError."""
    return _read_toml(path)


def _read_toml(path: Path) -> dict[str, Any]:
    """Every way a file can be unreadable is a ConfigError (exit 78, a refused reload)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    if data.startswith(codecs.BOM_UTF8):  # Windows editors save one; TOML has no use for it
        data = data[len(codecs.BOM_UTF8):]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError([f"{path}: UTF-16 (PowerShell's `>` writes it): save it as UTF-8"])
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}: line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); "
                           "TOML files must be UTF-8, comments included"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid TOML: nested too deeply"]) from None


def build_config(
    raw: Mapping[str, Any],
    models: Mapping[str, type[PluginConfig]],
    *,
    path: Path | None = None,
    base_dir: Path | None = None,
) -> Config:
    conv = _Converter(base_dir or Path.cwd())
    for key in raw.keys() - {"agent", "prometheus", "plugins"}:
        conv.errors.append(f"{key}: unknown section (known: agent, prometheus, plugins)")
    agent = conv.struct(raw.get("agent", {}), AgentSection, "agent")
    prometheus = conv.struct(raw.get("prometheus", {}), PrometheusSection, "prometheus")
    plugins = conv.plugins(raw.get("plugins", {}), models)
    conv.errors += _unknown_fallbacks(plugins)
    if conv.errors:
        raise ConfigError(sorted(conv.errors))
    return Config(path=path, agent=agent, prometheus=prometheus, plugins=plugins)


class _Converter:
    """Walks a TOML document against struct types, collecting `path: problem` strings."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.errors: list[str] = []

    def plugins(
        self, raw: object, models: Mapping[str, type[PluginConfig]]
    ) -> dict[str, PluginConfig]:
        if not isinstance(raw, dict):
            self.errors.append("plugins: expected a table of [plugins.<name>] sections")
            return {}
        for name in raw.keys() - models.keys():
            known = ", ".join(sorted(models)) or "none"
            self.errors.append(f"plugins.{name}: no plugin named {name!r} (installed: {known})")
        return {
            name: self.struct(raw.get(name, {}), model, f"plugins.{name}")
            for name, model in models.items()
        }

    def value(self, value: object, tp: Any, path: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            (inner,) = [a for a in args if a is not type(None)]
            return self.value(value, inner, path)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self.struct(value, tp, path)
        if tp is Secret or tp is Duration or tp is ConfigPath or tp is InputFile:
            return self._special(value, tp, path)
        # Containers are walked item by item so that an error names the key or index
        # (`files.fraud`), never msgspec's `files[...]`.
        if origin is list and isinstance(value, list):
            items = [self.value(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
            return _INVALID if any(v is _INVALID for v in items) else items
        if origin is dict and args[0] is str and isinstance(value, dict):
            table = {k: self.value(v, args[1], _join(path, k)) for k, v in value.items()}
            return _INVALID if any(v is _INVALID for v in table.values()) else table
        return self._leaf(value, tp, path)

    def struct(self, value: object, cls: type[Any], path: str) -> Any:
        if not isinstance(value, dict):
            self.errors.append(f"{path}: expected a table, got {_toml_type(value)}")
            return _INVALID
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
        flat = {f.encode_name: f for f in map(fields.pop, flattened(cls))}
        known = [k for info in msgspec.structs.fields(cls) for k in
                 (_keys(info.type) if info.encode_name in flat else [info.encode_name])]
        before = len(self.errors)
        for key in value.keys() - set(known):
            self.errors.append(f"{_join(path, key)}: unknown key (known: {', '.join(known)})")
        kwargs = {info.name: self.struct({k: v for k, v in value.items()
                                          if k in _keys(info.type)}, info.type, path)
                  for info in flat.values()}
        for key, info in fields.items():
            if key in value:
                kwargs[info.name] = self.value(value[key], info.type, _join(path, key))
            elif info.required:
                self.errors.append(f"{_join(path, key)}: required key is missing")
        if len(self.errors) > before:
            return _INVALID
        try:
            return cls(**kwargs)
        except FieldError as exc:
            self.errors.append(f"{_join(path, exc.key)}: {exc}")
        except MultiFieldError as exc:
            self.errors += [f"{_join(path, key)}: {message}" for key, message in exc.problems]
        except (ValueError, TypeError) as exc:
            self.errors.append(f"{path}: {exc}")
        return _INVALID

    def _special(self, value: object, tp: Any, path: str) -> Any:
        try:
            if tp is Secret:
                return resolve_secret(value, self.base_dir)
            if tp is Duration:
                return parse_duration(value)
            return resolve_path(value, self.base_dir, tp)
        except ValueError as exc:
            self.errors.append(f"{path}: {exc}")
            return _INVALID

    def _leaf(self, value: object, tp: Any, path: str) -> Any:
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            match = _MSGSPEC_PATH.match(str(exc))
            assert match is not None  # the pattern matches any string  # noqa: S101
            message = match["msg"]
            if typing.get_origin(tp) is Literal:
                message = f"must be one of {', '.join(map(repr, typing.get_args(tp)))}"
            self.errors.append(f"{path}{match['sub'] or ''}: {message}")
            return _INVALID



def flattened(struct: object) -> tuple[str, ...]:
    """The fields of a config struct (or its type) whose keys sit in its own table."""
    return tuple(getattr(struct, "flattened", ()))


def _keys(cls: type[Any]) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(cls)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _toml_type(value: object) -> str:
    names = {dict: "table", list: "array", str: "string", bool: "boolean", int: "integer"}
    return names.get(type(value), type(value).__name__)


def _unknown_fallbacks(plugins: Mapping[str, PluginConfig]) -> list[str]:
    """An alert sink's `fallback` naming no installed plugin (a typo) is an error: the
    alerts its primary cannot deliver would silently reach nobody."""
    known = ", ".join(sorted(plugins))
    return [f"plugins.{name}.fallback: no plugin named {target!r} (installed: {known})"
            for name, section in sorted(plugins.items())
            if (target := getattr(section, "fallback", "")) and isinstance(target, str)
            and target not in plugins]


def config_warnings(config: Config) -> list[str]:
    """What is valid but cannot work as meant: a plugin on without one it needs."""
    enabled = {name for name, section in config.plugins.items() if section.enabled}
    needs = [f"plugins.{name}: enabled, but it needs [plugins.{need}] enabled too "
             f"(it will have nothing to do)"
             for name in sorted(enabled) for need in type(config.plugins[name]).needs
             if need not in enabled]
    # An alert sink's `fallback` (agent.alertroute) names another plugin: it must be on.
    fallbacks = [f"plugins.{name}.fallback: [plugins.{target}] is not enabled (alerts this "
                 "sink cannot deliver would go nowhere)"
                 for name in sorted(enabled)
                 if (target := getattr(config.plugins[name], "fallback", ""))
                 and isinstance(target, str) and target not in enabled]
    own = [f"plugins.{name}.{warning}" for name in sorted(enabled)
           for warning in config.plugins[name].warnings()]
    return needs + fallbacks + own


def check_state_dir(state_dir: str) -> list[str]:
    """Create the state dir if needed and prove it writable, before anything depends on it."""
    path = Path(state_dir)
    probe = path / ".write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return [f"agent.state_dir: {path} is not writable: {exc.strerror or exc}"]
    return []


def config_path(arg: Path | None) -> Path | None:
    """The file a command reads: `-c`, else $INFERWATCH_CONFIG, else DEFAULT_CONFIG if it
    exists, else None (built-in defaults). One rule for every command, plugins' included."""
    if arg is not None:
        return arg
    if env := os.environ.get("INFERWATCH_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None
