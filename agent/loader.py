"""Finds plugins (entry points, then `-p MODULE`), one try/except per plugin.

A broken plugin is recorded and skipped so the others still load; `inferwatch plugins` shows
why, and `--strict-plugins` turns any failure into an exit (for CI).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from agent import hookspecs
from agent.config import PluginConfig
from agent.errors import PluginLoadError

GROUP = hookspecs.PROJECT
OWN_DISTRIBUTION = "inferwatch"


@dataclass
class PluginRecord:
    name: str
    origin: str  # "built-in", "entry point" or "command line"
    module: str
    distribution: str = ""
    version: str = ""
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    records: list[PluginRecord]

    @property
    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records if r.error is None]

    def config_models(self) -> dict[str, type[PluginConfig]]:
        return {r.name: self._config_model(r.name) for r in self.loaded}

    def call(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of `hook`; None if it has none."""
        others = [p for n, p in self.manager.list_name_plugin() if n != plugin]
        results = self.manager.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
        return results[0] if results else None

    def _config_model(self, name: str) -> type[PluginConfig]:
        model = self.call(name, "inferwatch_config_model")
        if model is None:
            return PluginConfig
        if not (inspect.isclass(model) and issubclass(model, PluginConfig)):
            raise PluginLoadError(f"plugin {name}: inferwatch_config_model must return a "
                                  "PluginConfig subclass")
        return model


def discover(extra: Sequence[str] = (), *, strict: bool = False) -> Plugins:
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    records = [_register(manager, *source) for source in _sources(extra)]
    failures = [r for r in records if r.error]
    if strict and failures:
        raise PluginLoadError("\n".join(f"plugin {r.name}: {r.error}" for r in failures))
    return Plugins(manager, records)


def _sources(extra: Sequence[str]) -> Iterable[tuple[PluginRecord, Callable[[], object]]]:
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        yield _entry_point_record(ep), ep.load
    for spec in extra:  # [NAME=]MODULE[:ATTR], as in an entry point
        name, _, target = spec.rpartition("=")
        module, _, attr = target.partition(":")
        default = attr or module.rsplit(".", 1)[-1]
        yield PluginRecord(name or default, "command line", target), _importer(module, attr)


def _importer(module: str, attr: str) -> Callable[[], object]:
    def load() -> object:
        loaded = importlib.import_module(module)
        return getattr(loaded, attr) if attr else loaded

    return load


def _entry_point_record(ep: EntryPoint) -> PluginRecord:
    dist = ep.dist.name if ep.dist else ""
    origin = "built-in" if dist == OWN_DISTRIBUTION else "entry point"
    version = ep.dist.version if ep.dist else ""
    return PluginRecord(ep.name, origin, ep.value, dist, version)


def _register(
    manager: pluggy.PluginManager, record: PluginRecord, load: Callable[[], object]
) -> PluginRecord:
    try:
        if manager.has_plugin(record.name):
            raise PluginLoadError(f"a plugin named {record.name!r} is already registered")
        plugin = load()
        manager.register(plugin, name=record.name)
        try:
            manager.check_pending()
        except pluggy.PluginValidationError:
            manager.unregister(name=record.name)
            raise
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
        record.error = f"{type(exc).__name__}: {exc}"
        return record
    record.hooks = sorted(h.name for h in manager.get_hookcallers(plugin) or [])
    if not record.version and isinstance(plugin, ModuleType):
        record.version = str(getattr(plugin, "__version__", ""))
    return record
