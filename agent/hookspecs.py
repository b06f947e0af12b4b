"""Every hook a plugin may implement. Keyword arguments only; hooks grow by adding parameters.

The core calls these per plugin (a plugin's config model and components are its own), so
an implementation sees its own validated section, never another plugin's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from agent.components import Component
    from agent.config import PluginConfig
    from agent.context import PluginContext

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
