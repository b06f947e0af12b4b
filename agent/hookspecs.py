"""Every hook a plugin may implement. Keyword arguments only; hooks grow by adding parameters.

The core calls these per plugin (a plugin's config model and components are its own), so
an implementation sees its own validated section, never another plugin's.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from agent.audit import AuditCheck, AuditContext
    from agent.components import Component
    from agent.config import PluginConfig
    from agent.context import PluginContext
    from agent.window import Window

PROJECT = "inferwatch"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def inferwatch_config_model() -> type[PluginConfig]:  # type: ignore[empty-body]
    """The typed model of `[plugins.<name>]`: a PluginConfig subclass.

    Without this hook a plugin accepts only the shared keys (enabled, interval, timeout).
    Set `enabled: bool = False` in the subclass for a plugin that must be switched on.
    """


@hookspec
def inferwatch_components(  # type: ignore[empty-body]
    config: PluginConfig, ctx: PluginContext
) -> Iterable[Component] | Awaitable[Iterable[Component]]:
    """The components this plugin runs with `config`; called again after a reload changed it.

    Constructors must do no I/O (it belongs in Component.start). May return an awaitable.
    """


@hookspec
def inferwatch_audit_checks(  # type: ignore[empty-body]
    config: PluginConfig, audit: AuditContext
) -> Iterable[AuditCheck] | Awaitable[Iterable[AuditCheck]]:
    """This plugin's readiness checks for `inferwatch audit` and the scheduled audit.

    Called for every loaded plugin, enabled or not (`config.enabled` says which), in a
    worker thread with a deadline. Checks read through `audit.root` and `audit.probes` and
    change nothing on the host; a check that cannot measure says so in a `pass` or `warn`.
    """


@hookspec
def inferwatch_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add CLI subcommands: `subparsers.add_parser(...)`, then `set_defaults(func=...)`.

    `func(args)` returns the exit code. Installed (entry point) plugins contribute commands,
    and so do `-p MODULE` plugins named on the command line (`inferwatch CMD -p MODULE`: the
    command line is read for `-p` before the parser is built, so CMD should accept `-p`).
    """


@hookspec(firstresult=True)
def inferwatch_recorded_window(path: Path, model: str) -> Window | None:
    """Every prediction of `model` in the NDJSON recording at `path` (gzip accepted), as one
    window built the way the running agent builds its windows, all versions as one stream.

    None: this plugin reads no recordings (the first answer wins). Raise ConfigError when the
    file holds no prediction of `model`. `inferwatch reference build` profiles it.
    """


@hookspec
def inferwatch_drift_statistics() -> Mapping[str, Callable[[Any, Any], float | None]]:  # type: ignore[empty-body]
    """Numeric drift statistics this plugin adds, by name: `fn(values, reference) -> float`.

    `values` is the window's column (a float64 numpy array, NaN for missing), `reference`
    the feature's reference (the drift plugin's NumericProfile: edges, probs, mean, std,
    count); None means "no value for this window". The drift monitor reports each beside
    its own statistics (replay's `drift.features.<name>.<statistic>`) and exports it as
    `inferwatch_drift_score{method="<statistic>"}`; it never decides drift. Names match
    `[a-z][a-z0-9_]{0,31}`, may not shadow a built-in, and at most 16 are taken. Called
    from the worker thread of the drift monitor: keep it pure and fast.
    """
