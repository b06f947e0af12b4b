"""Command line: the daemon (`run`) and the tools beside it; `inferwatch --help` lists every
command (its summary line is built from the commands themselves, so it cannot fall behind).
Errors are one line each, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.config import DEFAULT_CONFIG, config_path
from agent.errors import EX_CONFIG, EX_OK, EX_SOFTWARE, ConfigError, InferwatchError
from agent.loader import PluginRecord, discover

BUILT_IN = {"run", "check", "plugins", "demo"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    wanted = _command(argv) not in BUILT_IN and "--version" not in argv
    args = _parser(plugin_commands=wanted, extra=_named_plugins(argv)).parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `inferwatch replay ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_OK
    except InferwatchError as exc:
        for line in str(exc).splitlines():
            print(f"inferwatch: error: {line}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # noqa: BLE001 - a bug: say so plainly, keep the traceback for the report
        print("inferwatch: internal error (please report it with this traceback):",
              file=sys.stderr)
        traceback.print_exc()
        return EX_SOFTWARE
    return code


def _command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _named_plugins(argv: Sequence[str]) -> list[str]:
    """The `-p MODULE` plugins on the command line, read before the parser exists, so that
    their commands are in it (`inferwatch mycmd -p mymodule`)."""
    found = []
    for i, arg in enumerate(argv):
        if arg in ("-p", "--plugin") and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            found.append(arg.removeprefix("--plugin="))
        elif arg.startswith("-p") and len(arg) > 2:  # -pMODULE, -p=MODULE
            found.append(arg[2:].removeprefix("="))
    return found


def _parser(*, plugin_commands: bool = True, extra: Sequence[str] = ()
            ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferwatch")
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the agent in the foreground (systemd Type=notify)")
    check = sub.add_parser("check", help="validate the configuration and plugins; exit 0 or 78")
    for cmd in (run, check):
        _common(cmd)
    run.set_defaults(func=_run)
    check.set_defaults(func=_check)
    demo = sub.add_parser("demo", help="run the agent with a small model server that drifts")
    demo.add_argument("--seconds", type=float, default=0, help="stop after (0: Ctrl-C)")
    demo.add_argument("--drift-after", type=float, default=60.0, metavar="SECONDS")
    demo.add_argument("--rate", type=float, default=50.0, help="requests per second")
    demo.add_argument("--label-delay", type=float, default=10.0, metavar="SECONDS")
    demo.add_argument("--listen", default="127.0.0.1:9879", metavar="HOST:PORT")
    demo.add_argument("--window", default="30s", help="window length (default 30s)")
    demo.set_defaults(func=_demo)
    plugins = sub.add_parser("plugins", help="list the plugins found, their versions and hooks")
    plugins.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=_plugins)
    if plugin_commands:  # loading every plugin costs ~1 s: only when the command may be one
        _plugin_commands(sub, extra)
    parser.description = (f"inferwatch {__version__}, the monitoring agent for ML inference "
                          f"hosts. Commands: {', '.join(sub.choices)}. Errors are one line "
                          "each, never a traceback.")
    return parser


def _plugin_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                     extra: Sequence[str] = ()) -> None:
    """Commands plugins contribute (`audit`, `replay`, `reference`, ...); a plugin that fails
    here loses only its own. A `-p` plugin that does not load is reported by the command."""
    for impl in discover(extra).manager.hook.inferwatch_commands.get_hookimpls():
        try:
            impl.function(subparsers=sub)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the CLI
            print(f"inferwatch: warning: plugin {impl.plugin_name}: commands: {exc}",
                  file=sys.stderr)


def config_argument(cmd: argparse.ArgumentParser) -> None:
    """`-c/--config` as every command that reads the agent's config takes it (plugins' too)."""
    cmd.add_argument("-c", "--config", type=Path, default=None,
                     help=f"TOML file (default: $INFERWATCH_CONFIG, then {DEFAULT_CONFIG} if "
                          "it exists, else built-in defaults)")


def _common(cmd: argparse.ArgumentParser) -> None:
    config_argument(cmd)
    cmd.add_argument("-p", "--plugin", action="append", default=[],
                     metavar="[NAME=]MODULE[:ATTR]",
                     help="also load this module (or object in it) as a plugin (repeatable)")
    cmd.add_argument("--strict-plugins", action="store_true",
                     help="a plugin that fails to load is fatal (for CI)")



def _run(args: argparse.Namespace) -> int:
    from agent import process  # noqa: PLC0415

    process.prepare()  # before the runtime, and so any plugin, imports numpy
    from agent.runtime import Agent  # noqa: PLC0415 - keeps `check` and `plugins` light

    async def _main() -> int:
        loop = asyncio.get_running_loop()
        process.bound_default_executor(loop)
        agent = Agent(config_path(args.config), extra_plugins=args.plugin,
                      strict_plugins=args.strict_plugins)
        return await agent.run()

    return asyncio.run(_main())


def _check(args: argparse.Namespace) -> int:
    from agent.config import check_state_dir, config_warnings, load_config  # noqa: PLC0415

    path = config_path(args.config)
    found = discover(args.plugin, strict=args.strict_plugins)
    problems = [f"plugin {r.name}: {r.error}" for r in found.records if r.error]
    try:
        config = load_config(path, found.config_models())
        problems += check_state_dir(config.agent.state_dir)
    except ConfigError as exc:
        problems += exc.problems
    if problems and (args.strict_plugins or any(not p.startswith("plugin ") for p in problems)):
        raise ConfigError(problems)
    from agent.exposure import warnings  # noqa: PLC0415

    for line in problems + config_warnings(config) + warnings(config):
        print(f"inferwatch: warning: {line}", file=sys.stderr)
    enabled = sorted(n for n, c in config.plugins.items() if c.enabled)
    print(f"{path or 'built-in defaults'}: ok; plugins enabled: {', '.join(enabled) or 'none'}")
    return EX_OK


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run  # noqa: PLC0415

    return run(seconds=args.seconds, drift_after=args.drift_after, rate=args.rate,
               label_delay=args.label_delay, listen=args.listen, window=args.window)


def _plugins(args: argparse.Namespace) -> int:
    records = discover(args.plugin).records
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=2))
    else:
        for record in records:
            print(_describe(record))
    return EX_CONFIG if any(r.error for r in records) else EX_OK


def _describe(r: PluginRecord) -> str:
    source = f"{r.distribution} {r.version}".strip() if r.distribution else r.module
    head = f"{r.name:<16} {r.origin:<12} {source}"
    if r.error:
        return f"{head}\n    BROKEN: {r.error}"
    return f"{head}\n    hooks: {', '.join(r.hooks) or 'none'}"


if __name__ == "__main__":
    sys.exit(main())
