"""The alert engine's own series."""

from __future__ import annotations

from agent.metrics import counter, gauge

ALERTS = gauge("inferwatch_alerts", "Alerts by name, severity and state (pending, firing).",
               "alertname", "severity", "state")
EVALUATIONS = counter("inferwatch_alerts_evaluations_total", "Evaluations of the metric rules.")
EVALUATION_SECONDS = counter("inferwatch_alerts_evaluation_seconds_total",
                             "CPU time spent evaluating the rules.")
LAST_EVALUATION = gauge("inferwatch_alerts_last_evaluation_seconds",
                        "CPU time of the last evaluation of every rule.")
RULE_ERRORS = counter("inferwatch_alerts_rule_errors_total",
                      "Evaluations of a rule that failed (the others went on).", "rule")
RULES = gauge("inferwatch_alerts_rules", "Rules loaded, by kind (metric, event).", "kind")
TEMPLATE_ERRORS = counter("inferwatch_alerts_template_errors_total",
                          "Annotations that did not render; the raw template was sent.")
OVERFLOW = counter("inferwatch_alerts_overflow_total",
                   "Alerts refused because max_alerts were already active.")
STATE_WRITE_ERRORS = counter("inferwatch_alerts_state_write_errors_total",
                             "Failed writes of the alert state file.")
EMIT_DROPPED = counter("inferwatch_alerts_emit_dropped_total",
                       "Alert events the bus refused (full); retried on the next evaluation.")
EVENTS_SEEN = counter("inferwatch_alerts_events_total", "Events the event rules looked at.")
