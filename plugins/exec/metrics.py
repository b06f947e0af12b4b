"""Series of the exec sink (documented in docs/metrics.md)."""

from __future__ import annotations

from agent.metrics import counter, gauge

RUNS = counter("inferwatch_exec_runs_total",
               "Runs of the command, by exit status (the exit code, timeout or error: it "
               "could not start).", "status")
RUNNING = gauge("inferwatch_exec_running", "Runs of the command in progress.")
SKIPPED = counter("inferwatch_exec_skipped_total",
                  "Alert events that ran nothing, by reason (renewal, grouped, resolve, "
                  "malformed).", "reason")
