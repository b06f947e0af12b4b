"""The series every durable sink has (docs/sinks.md); light, so a plugin's stats can use them."""

from __future__ import annotations

from agent.metrics import counter, gauge

QUEUED = gauge("inferwatch_sink_queued", "Events waiting in a durable sink's outbox.",
               "plugin", "sink")
OLDEST = gauge("inferwatch_sink_oldest_age_seconds",
               "Age of the oldest event waiting in a durable sink's outbox.", "plugin", "sink")
# The help text is the MQTT sink's for the same name, so both render as one family.
DELIVERED = counter("inferwatch_sink_delivered_total", "Events the receiver acknowledged.",
                    "plugin", "sink")
FAILED = counter("inferwatch_sink_failed_total",
                 "Delivery attempts (batches) that failed and are retried after a backoff.",
                 "plugin", "sink")
DROPPED = counter("inferwatch_sink_dropped_total",
                  "Events a durable sink dropped, by reason (full, expired, corrupt, rejected).",
                  "plugin", "sink", "reason")
