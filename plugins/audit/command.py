"""`inferwatch audit [-c FILE] [--format table|json|markdown]`: exit 0 ready, 1 warnings, 2 not.

An invalid config is itself a failed check: the rest of the host is audited with the
built-in defaults, so one run shows everything that stands between the host and serving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.cli import config_argument
from agent.config import Config, config_path, load_config
from agent.errors import ConfigError
from agent.loader import discover
from plugins.audit.config import AuditConfig
from plugins.audit.integration import config_checks
from plugins.audit.render import render
from plugins.audit.runner import Report, context, run_audit


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = subparsers.add_parser(
        "audit", help="is this host ready to serve models: checks, exit 0 ready / "
                      "1 warnings / 2 not ready")
    config_argument(cmd)
    cmd.add_argument("-p", "--plugin", action="append", default=[],
                     metavar="[NAME=]MODULE[:ATTR]", help="also load this plugin (repeatable)")
    cmd.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    cmd.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto",
                     help="colour the table (auto: on a TTY)")
    cmd.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    report = audit(config_path(args.config), args.plugin)
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    print(render(report, args.format, colour=colour))
    return report.exit_code


def audit(path: Path | None, extra: list[str], **kwargs: Any) -> Report:
    found = discover(extra)
    errors = [f"{r.name}: {r.error}" for r in found.records if r.error]
    models = found.config_models()
    try:
        config, problems = load_config(path, models), []
    except ConfigError as exc:
        config, problems = load_config(None, models), exc.problems
    first = config_checks(path, problems, errors, config.agent.state_dir)
    settings = _settings(config)
    return run_audit(found, context(config, settings, **kwargs), settings, first)


def _settings(config: Config) -> AuditConfig:
    settings = config.plugins.get("audit")
    return settings if isinstance(settings, AuditConfig) else AuditConfig()

