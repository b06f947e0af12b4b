"""Series of the Alertmanager sink (documented in docs/metrics.md)."""

from __future__ import annotations

from agent.metrics import counter, gauge

HELD = gauge("inferwatch_alertmanager_alerts",
             "Alert episodes held, by state (resolved: until every Alertmanager took it).",
             "state")
UP = gauge("inferwatch_alertmanager_up",
           "1 while the last POST to this Alertmanager succeeded.", "url")
PENDING = gauge("inferwatch_alertmanager_pending",
                "Alert changes this Alertmanager has not acknowledged yet.", "url")
OLDEST = gauge("inferwatch_alertmanager_pending_oldest_age_seconds",
               "Age of the oldest alert change this Alertmanager has not acknowledged.", "url")
SENT = counter("inferwatch_alertmanager_sent_total",
               "Alerts this Alertmanager accepted (first sends, changes and renewals).", "url")
ERRORS = counter("inferwatch_alertmanager_errors_total",
                 "Failed POSTs by reason (unreachable, timeout, tls, redirect: not followed, "
                 "http_4xx, http_5xx, "
                 "rejected: a 400, whose invalid alerts are not retried).", "url", "reason")
MALFORMED = counter("inferwatch_alertmanager_malformed_total",
                    "Alert events skipped because their data was unusable.")
DROPPED = counter("inferwatch_alertmanager_dropped_total",
                  "Alert episodes forgotten over max_alerts (oldest resolved first).")
FALLBACKS = counter("inferwatch_alertmanager_fallbacks_total",
                    "Alert changes handed to the fallback sink after fallback_after "
                    "without any Alertmanager taking them.")
EXPIRED = counter("inferwatch_alertmanager_expired_total",
                  "Firing alerts no event renewed for stale_after (the engine is gone): no "
                  "longer renewed, so Alertmanager resolved them at their endsAt; forgotten.")
