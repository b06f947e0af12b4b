"""The plugin's Prometheus series: ingestion, sampling, the join, windows and data quality."""

from __future__ import annotations

from agent.components import Collector
from agent.metrics import Accumulator, counter, gauge
from agent.redact import Redactor
from plugins.ingest.pipeline import Pipeline
from plugins.ingest.stage import JoinStage, WindowService
from plugins.ingest.tally import Tally

RECEIVED = counter("inferwatch_samples_received_total", "Predictions accepted.", "model")
LABELS = counter("inferwatch_labels_received_total", "Labels accepted.", "model")
REJECTED = counter("inferwatch_samples_rejected_total",
                   "Records refused, by model and reason.", "model", "reason")
CONNECTIONS = gauge("inferwatch_ingest_connections", "Open ingestion connections.")
JOINED = counter("inferwatch_labels_joined_total", "Predictions joined with their label.",
                 "model")
WAITING = gauge("inferwatch_label_join_waiting", "Predictions or labels waiting for the other.",
                "kind")
JOIN_LOST = counter("inferwatch_label_join_lost_total",
                    "Records that left the join unmatched, by reason.", "reason")
LABEL_OUTCOMES = counter(
    "inferwatch_label_join_labels_total",
    "Labels that reached the join, by outcome: joined, duplicate (a later label for a request "
    "already labelled; it replaces the earlier), expired (its prediction was older than "
    "label_ttl), unmatched (no prediction within label_ttl).", "outcome")
BYTES = counter("inferwatch_ingest_received_bytes_total", "Bytes read from clients.")
BOUNDED = ("too_large_predictions", "too_large_labels", "full_predictions", "full_labels")
FOLDED = counter("inferwatch_ingest_folded_total",
                 "Values beyond a bound on client-chosen names, counted as _other, by kind "
                 "(model_version, class, feature, group).", "kind")
FOLDED_KINDS = ("model_version", "class", "feature", "group")
REDACTIONS = counter("inferwatch_ingest_redactions_total",
                     "Values in request ids and feature values redacted or pseudonymised "
                     "(the redact option), by rule; rules past the first 16 as _other.",
                     "rule")
MAX_RULE_LABELS = 16
REQUESTS_REFUSED = counter("inferwatch_ingest_requests_refused_total",
                           "HTTP ingestion requests refused whole, by reason.", "reason")


SAMPLED_OUT = counter("inferwatch_samples_sampled_out_total",
                      "Predictions left out by the sampling policy, by reason (rate, budget).",
                      "model", "reason")
EFFECTIVE = gauge("inferwatch_sampling_effective_ratio",
                  "Share of predictions kept since the last collection.", "model")
DUPLICATES = counter("inferwatch_samples_duplicate_total",
                     "Predictions whose request id was already waiting (the newer replaces it).")
WINDOWS = counter("inferwatch_windows_published_total", "Windows handed to monitors.")
WINDOW_LABELS = counter("inferwatch_window_labels_total",
                        "Joined labels by whether their sample was still in a window.", "outcome")
FEATURE_ISSUES = counter("inferwatch_feature_issues_total",
                         "Data-quality findings per feature (missing, null, wrong_type, "
                         "non_finite, out_of_range, unseen_category).", "model", "feature",
                         "issue")


class IngestStats(Collector):
    blocking = False

    def __init__(self, tally: Tally, join: JoinStage, windows: WindowService) -> None:
        super().__init__("stats")
        self.tally, self.join, self.windows = tally, join, windows
        self._last: dict[str, tuple[int, int]] = {}

    async def collect(self, out: Accumulator) -> None:
        tally = self.tally
        for model, count in tally.received.items():
            out.add(RECEIVED, count, model=model)
        for model, count in tally.labels.items():
            out.add(LABELS, count, model=model)
        for (model, reason), count in tally.rejected.items():
            out.add(REJECTED, count, model=model, reason=reason)
        out.add(CONNECTIONS, tally.connections)
        out.add(BYTES, tally.bytes)
        for reason, count in tally.refused_requests.items():
            out.add(REQUESTS_REFUSED, count, reason=reason)
        self._join(out)
        if tally.pipeline is not None:
            self._sampling(out, tally.pipeline)
            if tally.pipeline.redactor:
                _redactions(out, tally.pipeline.redactor)
        stage = self.windows.stage
        out.add(WINDOWS, self.windows.published)
        folded = stage.folded()
        for kind in FOLDED_KINDS:
            out.add(FOLDED, folded[kind], kind=kind)
        for outcome in ("labels_windowed", "labels_outside_windows"):
            out.add(WINDOW_LABELS, stage.counts[outcome], outcome=outcome.split("_", 1)[1])
        for (model, feature, issue), count in stage.quality.items():
            out.add(FEATURE_ISSUES, count, model=tally.model(model), feature=feature,
                    issue=issue)

    def _join(self, out: Accumulator) -> None:
        for model, count in self.join.joined.items():
            out.add(JOINED, count, model=self.tally.model(model))
        for kind, count in self.join.waiting.items():
            out.add(WAITING, count, kind=kind)
        counts = self.join.store.counts
        for reason in ("expired_predictions", "unmatched_labels", "dropped_predictions",
                       "dropped_labels"):
            out.add(JOIN_LOST, counts[reason], reason=reason)
        out.add(JOIN_LOST, self.join.dropped, reason="join_queue_full")
        for outcome in ("joined", "duplicate", "expired"):
            out.add(LABEL_OUTCOMES, counts[f"labels_{outcome}"], outcome=outcome)
        out.add(LABEL_OUTCOMES, counts["unmatched_labels"], outcome="unmatched")
        for reason in BOUNDED:  # the join's bounds on disk (docs/ingestion.md, "Limits")
            out.add(JOIN_LOST, counts[reason], reason=reason)
        out.add(DUPLICATES, counts["duplicate_predictions"])

    def _sampling(self, out: Accumulator, pipeline: Pipeline) -> None:
        for (model, reason), count in pipeline.sampled_out.items():
            out.add(SAMPLED_OUT, count, model=self.tally.model(model), reason=reason)
        for model, seen in pipeline.seen.items():
            kept = pipeline.kept[model]
            last_seen, last_kept = self._last.get(model, (0, 0))
            self._last[model] = (seen, kept)
            ratio = (kept - last_kept) / (seen - last_seen) if seen > last_seen else 1.0
            out.add(EFFECTIVE, ratio, model=self.tally.model(model))


def _redactions(out: Accumulator, redactor: Redactor) -> None:
    """One series per configured rule, zeros included, read by name (the counts dict is
    never iterated while the pipeline may add to it); custom rules past the cap summed."""
    names = redactor.names
    for name in names[:MAX_RULE_LABELS]:
        out.add(REDACTIONS, redactor.counts.get(name, 0), rule=name)
    if rest := names[MAX_RULE_LABELS:]:
        out.add(REDACTIONS, sum(redactor.counts.get(n, 0) for n in rest), rule="_other")
