"""Command line: `inferwatch run | check | plugins`. Errors are one line each, never a traceback."""

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
from agent.errors import EX_CONFIG, EX_OK, EX_SOFTWARE, ConfigError, InferwatchError
from agent.loader import PluginRecord, discover

DEFAULT_CONFIG = Path("/etc/inferwatch/agent.toml")
BUILT_IN = {"run", "check", "plugins", "replay", "reference", "demo"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    wanted = _command(argv) not in BUILT_IN and "--version" not in argv
    args = _parser(plugin_commands=wanted).parse_args(argv)
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


def _parser(*, plugin_commands: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferwatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the agent in the foreground (systemd Type=notify)")
    check = sub.add_parser("check", help="validate the configuration and plugins; exit 0 or 78")
    for cmd in (run, check):
        _common(cmd)
    run.set_defaults(func=_run)
    check.set_defaults(func=_check)
    replay = sub.add_parser(
        "replay", help="run recorded samples and labels through the windows and monitors; "
                       "print JSON lines")
    replay.add_argument("--samples", type=Path, required=True, metavar="FILE",
                        help="NDJSON predictions (gzip accepted), in time order")
    replay.add_argument("--labels", type=Path, default=None, metavar="FILE",
                        help="NDJSON labels (gzip accepted), in time order")
    replay.add_argument("--window", action="append", default=[], metavar="SPEC",
                        help="override the configured windows, e.g. 1h, 1h/10m, 10000n "
                             "(repeatable)")
    replay.add_argument("--reference", action="append", type=Path, default=[],
                        metavar="FILE", help="a reference profile for the drift monitor "
                        "(from `inferwatch reference build`; repeatable, one per model)")
    replay.add_argument("-c", "--config", type=Path, default=None,
                        help="TOML file (default: built-in defaults for every monitor)")
    replay.add_argument("-p", "--plugin", action="append", default=[],
                        metavar="[NAME=]MODULE[:ATTR]", help="also load this plugin")
    replay.set_defaults(func=_replay)
    reference = sub.add_parser("reference", help="reference profiles for drift detection")
    ref_sub = reference.add_subparsers(required=True, metavar="ACTION")
    ref_build = ref_sub.add_parser("build", help="profile training or validation data")
    ref_build.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE",
                           help="NDJSON samples, CSV with a header, or Parquet (pyarrow)")
    ref_build.add_argument("--model", required=True)
    ref_build.add_argument("--model-version", default="")
    ref_build.add_argument("--out", type=Path, required=True, metavar="FILE")
    ref_build.set_defaults(func=_reference_build)
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
        _plugin_commands(sub)
    return parser


def _plugin_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Commands plugins contribute (`audit`, ...); a plugin that fails here loses only its own."""
    for impl in discover().manager.hook.inferwatch_commands.get_hookimpls():
        try:
            impl.function(subparsers=sub)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the CLI
            print(f"inferwatch: warning: plugin {impl.plugin_name}: commands: {exc}",
                  file=sys.stderr)


def _common(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-c", "--config", type=Path, default=None,
                     help=f"TOML file (default: $INFERWATCH_CONFIG, then {DEFAULT_CONFIG} if "
                          "it exists, else built-in defaults)")
    cmd.add_argument("-p", "--plugin", action="append", default=[],
                     metavar="[NAME=]MODULE[:ATTR]",
                     help="also load this module (or object in it) as a plugin (repeatable)")
    cmd.add_argument("--strict-plugins", action="store_true",
                     help="a plugin that fails to load is fatal (for CI)")


def _config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    if env := os.environ.get("INFERWATCH_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _run(args: argparse.Namespace) -> int:
    from agent.runtime import Agent  # noqa: PLC0415 - keeps `check` and `plugins` light

    async def _main() -> int:
        agent = Agent(_config_path(args.config), extra_plugins=args.plugin,
                      strict_plugins=args.strict_plugins)
        return await agent.run()

    return asyncio.run(_main())


def _check(args: argparse.Namespace) -> int:
    from agent.config import check_state_dir, load_config  # noqa: PLC0415

    path = _config_path(args.config)
    found = discover(args.plugin, strict=args.strict_plugins)
    problems = [f"plugin {r.name}: {r.error}" for r in found.records if r.error]
    try:
        config = load_config(path, found.config_models())
        problems += check_state_dir(config.agent.state_dir)
    except ConfigError as exc:
        problems += exc.problems
    if problems and (args.strict_plugins or any(not p.startswith("plugin ") for p in problems)):
        raise ConfigError(problems)
    for line in problems:
        print(f"inferwatch: warning: {line}", file=sys.stderr)
    enabled = sorted(n for n, c in config.plugins.items() if c.enabled)
    print(f"{path or 'built-in defaults'}: ok; plugins enabled: {', '.join(enabled) or 'none'}")
    return EX_OK


def _replay(args: argparse.Namespace) -> int:
    from agent.config import load_config  # noqa: PLC0415
    from agent.window import WindowSpec  # noqa: PLC0415
    from plugins.ingest.replay import replay  # noqa: PLC0415 - numpy only when replaying

    problems = [f"--{name}: {path}: no such file" for name, path in
                (("samples", args.samples), ("labels", args.labels))
                if path is not None and not path.is_file()]
    for spec in args.window:
        try:
            WindowSpec.parse(spec)
        except ValueError as exc:
            problems.append(f"--window: {exc}")
    found = discover(args.plugin, strict=True)
    config = load_config(args.config, found.config_models())
    if problems:
        raise ConfigError(problems)
    for path in args.reference:
        if not path.is_file():
            problems.append(f"--reference: {path}: no such file")
    if problems:
        raise ConfigError(problems)
    summary = replay(config, found, args.samples, args.labels, windows=args.window,
                     references=args.reference, out=sys.stdout)
    print(f"inferwatch: replayed {json.dumps(summary)}", file=sys.stderr)
    return EX_OK


def _reference_build(args: argparse.Namespace) -> int:
    from plugins.drift.reference import build_reference  # noqa: PLC0415 - numpy on demand

    profile = build_reference(args.source, args.model, args.model_version)
    profile.save(args.out)
    print(f"{args.out}: {profile.count} rows, {len(profile.numeric)} numeric and "
          f"{len(profile.categorical)} categorical features, "
          f"{args.out.stat().st_size / 1024:.0f} KiB")
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
