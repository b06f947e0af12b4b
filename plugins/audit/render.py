"""The report as a console table (coloured on a TTY), JSON, or Markdown."""

from __future__ import annotations

import json
import shutil
import textwrap

from agent.audit import AuditCheck
from plugins.audit.runner import Report

COLOURS = {"pass": "\033[32m", "warn": "\033[33m", "fail": "\033[31m"}
RESET = "\033[0m"
SUMMARY = {"ready": "READY", "warnings": "READY WITH WARNINGS", "not_ready": "NOT READY"}


def render(report: Report, fmt: str, *, colour: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2)
    if fmt == "markdown":
        return markdown(report)
    return table(report, colour=colour)


def _value(check: AuditCheck) -> str:
    return "" if check.value is None else str(check.value)


def table(report: Report, *, colour: bool) -> str:
    width = shutil.get_terminal_size((120, 24)).columns
    name_w = min(max((len(c.name) for c in report.checks), default=5), 40)
    value_w = max(20, width - name_w - 10)
    lines = [f"{'STATUS':<6}  {'CHECK':<{name_w}}  VALUE (threshold)"]
    for check in report.checks:
        status = check.status.upper()
        if colour:
            status = f"{COLOURS[check.status]}{status:<6}{RESET}"
        text = f"{_value(check)} ({check.threshold})"
        wrapped = textwrap.wrap(text, value_w) or [""]
        lines.append(f"{status:<6}  {check.name:<{name_w}}  {wrapped[0]}")
        lines.extend(f"{'':<6}  {'':<{name_w}}  {more}" for more in wrapped[1:])
        if check.status != "pass" and check.fix:
            for fix in textwrap.wrap(f"fix: {check.fix}", value_w):
                lines.append(f"{'':<6}  {'':<{name_w}}  {fix}")
    counts = {s: sum(c.status == s for c in report.checks) for s in COLOURS}
    lines.append(f"\n{SUMMARY[report.status]}: {counts['pass']} pass, {counts['warn']} warn, "
                 f"{counts['fail']} fail ({report.seconds:.1f}s)")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    lines = [f"# inferwatch audit: {SUMMARY[report.status].lower()}", "",
             "| status | check | value | threshold | why | fix |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {c.status} | `{c.name}` | {_cell(_value(c))} | {_cell(c.threshold)} | "
              f"{_cell(c.why)} | {_cell(c.fix)} |" for c in report.checks]
    return "\n".join(lines)
