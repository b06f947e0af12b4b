"""Series of the MQTT sink and its outbox (documented in docs/mqtt.md)."""

from __future__ import annotations

from agent.metrics import counter, gauge

CONNECTED = gauge("inferwatch_mqtt_connected", "1 while connected to the broker.")
CONNECTS = counter("inferwatch_mqtt_connects_total", "Successful connections to the broker.")
CONNECT_ERRORS = counter("inferwatch_mqtt_connect_errors_total",
                         "Failed connection attempts, by reason.", "reason")
DEPTH = gauge("inferwatch_outbox_depth", "Events waiting in the outbox.", "sink")
BYTES = gauge("inferwatch_outbox_bytes", "Payload bytes waiting in the outbox.", "sink")
OLDEST = gauge("inferwatch_outbox_oldest_age_seconds",
               "Age of the oldest event waiting in the outbox.", "sink")
DROPPED = counter("inferwatch_outbox_dropped_total",
                  "Events dropped, by reason (full, expired, too_large).", "sink", "reason")
DELIVERED = counter("inferwatch_sink_delivered_total",
                    "Events the receiver acknowledged.", "sink")
RESENT = counter("inferwatch_sink_resent_total",
                 "Events sent again after a reconnect (at-least-once duplicates).", "sink")
REFUSED = counter("inferwatch_mqtt_publish_refused_total",
                  "Publishes the broker refused (MQTT 5 reason code >= 0x80), by reason; the "
                  "events stay in the outbox and are retried.", "reason")
