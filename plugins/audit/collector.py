"""The audit inside the running agent: the same checks as the CLI, every `interval`.

Each run exports `inferwatch_audit_check_status{check}` (0 pass, 1 warn, 2 fail) and emits
one `audit.report` event carrying the whole report, the CLI's JSON document.
"""

from __future__ import annotations

from agent.audit import RANK
from agent.components import Collector
from agent.context import PluginContext
from agent.metrics import Accumulator, gauge
from agent.model import Severity
from plugins.audit.command import audit
from plugins.audit.config import AuditConfig

CHECK_STATUS = gauge("inferwatch_audit_check_status",
                     "Readiness check result from the last audit: 0 pass, 1 warn, 2 fail.",
                     "check")
STATUS = gauge("inferwatch_audit_status",
               "Overall result of the last audit: 0 ready, 1 warnings, 2 not ready.")
DURATION = gauge("inferwatch_audit_duration_seconds", "Wall time of the last audit.")
SEVERITY = {0: Severity.INFO, 1: Severity.WARNING, 2: Severity.CRITICAL}


class AuditCollector(Collector):
    def __init__(self, config: AuditConfig, ctx: PluginContext) -> None:
        super().__init__("audit")
        self.config, self.ctx = config, ctx

    def collect(self, out: Accumulator) -> None:
        report = audit(self.ctx.config_path, list(self.ctx.extra_plugins))
        for check in report.checks:
            out.add(CHECK_STATUS, RANK[check.status], check=check.name)
        out.add(STATUS, report.rank)
        out.add(DURATION, report.seconds)
        self.ctx.emit(self.ctx.event("audit.report", severity=SEVERITY[report.rank],
                                     data=report.as_dict(),
                                     attributes={"status": report.status}))
