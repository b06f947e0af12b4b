"""`inferwatch replay` and `inferwatch report`: the ingest plugin's commands, added through
`inferwatch_commands` like any plugin's. Errors are ConfigError (one line each, exit 78)."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
import sys
from pathlib import Path
from typing import IO, cast

from agent.errors import EX_DATAERR, EX_OK, ConfigError
from agent.loader import discover


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    replay.set_defaults(func=run_replay)
    report = sub.add_parser("report", help="an HTML report from replay's JSON lines")
    report.add_argument("lines", type=Path, metavar="FILE.ndjson",
                        help="what `inferwatch replay` printed ('-' for standard input)")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        metavar="FILE.html", help="where to write it (default: report.html)")
    report.add_argument("--title", default="inferwatch replay report")
    report.set_defaults(func=run_report)


def run_replay(args: argparse.Namespace) -> int:
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
        write_report(args.report, tee.lines, title=f"replay of {args.samples.name}",
                     config=config_text(args))
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


def config_text(args: argparse.Namespace) -> str:
    """The command and the config file for the report, with credentials a reader of the
    report must not see masked (a URL's user:password@, literal values of secret keys)."""
    command = "inferwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    body = args.config.read_text(errors="replace") if args.config else "(built-in defaults)"
    body = _SECRET_KEY.sub(r'\1"***"', _USERINFO.sub("***@", body))
    return f"$ {_USERINFO.sub('***@', command)}\n\n{body}"


def run_report(args: argparse.Namespace) -> int:
    stream = sys.stdin if str(args.lines) == "-" else None
    if stream is None and not args.lines.is_file():
        raise ConfigError([f"{args.lines}: no such file"])
    text = stream.read() if stream is not None else args.lines.read_text(errors="replace")
    write_report(args.output, text.splitlines(), title=args.title, config="")
    return EX_OK


def write_report(path: Path, lines: list[str], *, title: str, config: str) -> None:
    from plugins.ingest.report.render import render  # noqa: PLC0415 - only when asked for

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
