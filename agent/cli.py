"""Command line: the daemon (`run`) and the tools beside it; `inferwatch --help` lists every
command (its summary line is built from the commands themselves, so it cannot fall behind).
Errors are one line each, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

from agent import __version__
from agent.config import DEFAULT_CONFIG, config_path
from agent.errors import EX_CONFIG, EX_DATAERR, EX_OK, EX_SOFTWARE, ConfigError, InferwatchError
from agent.loader import PluginRecord, discover

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
    parser = argparse.ArgumentParser(prog="inferwatch")
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
    replay.add_argument("--report", type=Path, default=None, metavar="FILE.html",
                        help="also write a self-contained HTML report of the replay")
    replay.set_defaults(func=_replay)
    report = sub.add_parser("report", help="an HTML report from replay's JSON lines")
    report.add_argument("lines", type=Path, metavar="FILE.ndjson",
                        help="what `inferwatch replay` printed ('-' for standard input)")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        metavar="FILE.html", help="where to write it (default: report.html)")
    report.add_argument("--title", default="inferwatch replay report")
    report.set_defaults(func=_report)
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
    parser.description = (f"inferwatch {__version__}, the monitoring agent for ML inference "
                          f"hosts. Commands: {', '.join(sub.choices)}. Errors are one line "
                          "each, never a traceback.")
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
    tee = _Tee(sys.stdout) if args.report else None
    summary = replay(config, found, args.samples, args.labels, windows=args.window,
                     references=args.reference, out=cast(IO[str], tee) if tee else sys.stdout)
    print(f"inferwatch: replayed {json.dumps(summary)}", file=sys.stderr)
    if tee is not None:
        _write_report(args.report, tee.lines, title=f"replay of {args.samples.name}",
                      config=_config_text(args))
    return EX_DATAERR if summary["cut_short"] else EX_OK


class _Tee(io.TextIOBase):
    """Replay's output, written through and kept for the report (a few MB at most)."""

    def __init__(self, target: IO[str]) -> None:
        self.target, self._partial = target, ""
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.target.write(text)
        *done, self._partial = (self._partial + text).split("\n")
        self.lines += done
        return len(text)

    def flush(self) -> None:
        self.target.flush()


_USERINFO = re.compile(r"(?<=://)[^/@\s\"']+@")
_SECRET_KEY = re.compile(r"^(\s*[\w.-]*(?:token|password|passwd|secret|api_key)[\w.-]*\s*=\s*)"
                         r"(?!\s*\{\s*(?:file|env)\s*=)(.+)$", re.IGNORECASE | re.MULTILINE)


def _config_text(args: argparse.Namespace) -> str:
    """The command and the config file for the report, with credentials a reader of the
    report must not see masked (a URL's user:password@, literal values of secret keys)."""
    command = "inferwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    body = args.config.read_text(errors="replace") if args.config else "(built-in defaults)"
    body = _SECRET_KEY.sub(r'\1"***"', _USERINFO.sub("***@", body))
    return f"$ {_USERINFO.sub('***@', command)}\n\n{body}"


def _report(args: argparse.Namespace) -> int:
    stream = sys.stdin if str(args.lines) == "-" else None
    if stream is None and not args.lines.is_file():
        raise ConfigError([f"{args.lines}: no such file"])
    text = stream.read() if stream is not None else args.lines.read_text(errors="replace")
    _write_report(args.output, text.splitlines(), title=args.title, config="")
    return EX_OK


def _write_report(path: Path, lines: list[str], *, title: str, config: str) -> None:
    from plugins.report.render import render  # noqa: PLC0415 - only when asked for

    parsed, bad = [], 0
    for line in lines:
        try:
            if line.strip():
                parsed.append(json.loads(line))
        except ValueError:
            bad += 1
    if bad:
        print(f"inferwatch: report: {bad} lines that are not JSON were left out", file=sys.stderr)
    path.write_text(render([p for p in parsed if isinstance(p, dict)], title=title,
                           config=config), encoding="utf-8")
    print(f"inferwatch: report written to {path}", file=sys.stderr)


def _reference_build(args: argparse.Namespace) -> int:
    from plugins.drift.profile import findings  # noqa: PLC0415 - numpy on demand
    from plugins.drift.reference import build_reference  # noqa: PLC0415

    profile = build_reference(args.source, args.model, args.model_version)
    try:
        profile.save(args.out)
    except OSError as exc:
        raise ConfigError([f"--out: {args.out}: {exc.strerror or exc}"]) from None
    except ValueError as exc:  # a statistic that JSON cannot carry
        raise ConfigError([f"--out: {exc}"]) from None
    print(f"{args.out}: {profile.count} rows, {len(profile.numeric)} numeric and "
          f"{len(profile.categorical)} categorical features, "
          f"{args.out.stat().st_size / 1024:.0f} KiB")
    if aside := findings(profile):  # data-quality findings: not in the mean and spread
        print(f"{args.out}: values set aside as extreme or non-finite: {json.dumps(aside)}",
              file=sys.stderr)
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
