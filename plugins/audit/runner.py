"""Runs every plugin's checks, each plugin in a daemon thread of its own under one deadline.

A plugin whose checks raise, hang or return something else gets one failed check of its
own (`plugin.<name>`); the others are unaffected, as in the running agent.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import inspect
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.audit import RANK, AuditCheck, AuditContext, Probes
from agent.config import Config
from agent.loader import Plugins
from plugins.audit import threads
from plugins.audit.config import AuditConfig

MAX_CHECKS = 1000  # the `check` label's bound
MAX_MODEL_FILES = 100_000
MODEL_SCAN_SECONDS = 2.0  # a glob as wide as `/**` must not hold the audit for minutes
STATUS = {0: "ready", 1: "warnings", 2: "not_ready"}


@dataclass(frozen=True)
class Report:
    checks: list[AuditCheck]
    seconds: float

    @property
    def rank(self) -> int:
        return max((RANK[c.status] for c in self.checks), default=0)

    @property
    def status(self) -> str:
        return STATUS[self.rank]

    @property
    def exit_code(self) -> int:
        return self.rank

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.as_dict() for c in self.checks]}


def context(config: Config, settings: AuditConfig, probes: Probes | None = None) -> AuditContext:
    return AuditContext(config=config, root=Path(settings.root), probes=probes or Probes(),
                        model_bytes=model_bytes(settings),
                        model_server_user=settings.model_server_user,
                        timeout=float(settings.connect_timeout))


def model_bytes(settings: AuditConfig) -> int:
    """The declared size plus every file the model globs match (under the audited root),
    as far as MAX_MODEL_FILES files and MODEL_SCAN_SECONDS take the scan."""
    total, seen = settings.model_bytes, 0
    deadline = time.monotonic() + MODEL_SCAN_SECONDS
    for pattern in settings.model_paths:
        rooted = str(Path(settings.root) / pattern.lstrip("/"))
        for name in glob.iglob(rooted, recursive=True):  # noqa: PTH207 - absolute patterns
            total += _size(Path(name))
            seen += 1
            if seen >= MAX_MODEL_FILES or time.monotonic() > deadline:
                return total
    return total


def _size(path: Path) -> int:
    """A regular file's size; 0 for anything else, or a file gone since the glob saw it."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def run_audit(plugins: Plugins, ctx: AuditContext, settings: AuditConfig,
              first: Iterable[AuditCheck] = ()) -> Report:
    began = time.monotonic()
    deadline = began + float(settings.timeout)
    pending = {r.name: _submit(plugins, r.name, ctx) for r in plugins.loaded
               if r.name in ctx.config.plugins}
    checks = list(first)
    for name, future in pending.items():
        checks.extend(_collect(name, future, deadline))
    return Report(_bounded(checks, settings.skip), time.monotonic() - began)


def _submit(plugins: Plugins, name: str, ctx: AuditContext) -> Future[Any]:
    return threads.submit(f"plugin.{name}", _call, plugins, name, ctx.config.plugins[name], ctx)


def _call(plugins: Plugins, name: str, section: object, ctx: AuditContext) -> list[Any]:
    result = plugins.call(name, "inferwatch_audit_checks", config=section, audit=ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    return list(result or ())


async def _wait(result: Any) -> Any:
    return await result


def _collect(name: str, future: Future[Any], deadline: float) -> list[AuditCheck]:
    try:
        result = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return [_broken(name, "did not finish before the audit's deadline")]
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is one failed check, not a crash
        return [_broken(name, f"{type(exc).__name__}: {exc}"[:500])]
    if not all(isinstance(c, AuditCheck) for c in result):
        return [_broken(name, "inferwatch_audit_checks returned something other than "
                              "AuditCheck objects")]
    return list(result)


def _broken(name: str, problem: str) -> AuditCheck:
    return AuditCheck(f"plugin.{name}", "fail", problem, "the plugin's checks complete",
                      "a check that cannot run says nothing about what it guards",
                      f"report it to the {name} plugin's authors")


def _bounded(checks: list[AuditCheck], skip: list[str]) -> list[AuditCheck]:
    """Skipped names out, duplicate names dropped (first kept), at most MAX_CHECKS: the last
    one then sums up those left out, as bad as the worst of them, so the verdict stands."""
    kept: dict[str, AuditCheck] = {}
    for check in checks:
        if check.name not in kept and not any(fnmatch.fnmatch(check.name, p) for p in skip):
            kept[check.name] = check
    ordered = list(kept.values())
    if len(ordered) <= MAX_CHECKS:
        return ordered
    left = ordered[MAX_CHECKS - 1:]
    worst = max(left, key=lambda c: RANK[c.status]).status
    fails, warns = (sum(c.status == s for c in left) for s in ("fail", "warn"))
    return [*ordered[:MAX_CHECKS - 1], AuditCheck(
        "audit.truncated", worst, f"{len(left)} checks left out ({fails} fail, {warns} warn)",
        f"at most {MAX_CHECKS} checks in one report",
        "checks past the bound are not shown, but their worst status still counts",
        "skip the noisy checks ([plugins.audit] skip) to see the rest" if worst != "pass"
        else "")]
