"""Series of the log shipper (documented in docs/logs.md)."""

from __future__ import annotations

from agent.metrics import counter, gauge

LINES_READ = counter("inferwatch_logs_lines_read_total",
                     "Whole lines read from an input's files (or the journal).", "input")
LINES_SHIPPED = counter("inferwatch_logs_lines_shipped_total",
                        "Lines an output's receiver took (deleted from its outbox).", "output")
LINES_QUEUED = counter("inferwatch_logs_lines_queued_total",
                       "Lines an input committed to the outboxes (its checkpoint moved).",
                       "input")
REDACTED = counter("inferwatch_logs_redactions_total",
                   "Values redacted or pseudonymised, by input and rule.", "input", "rule")
DROPPED = counter("inferwatch_logs_dropped_total",
                  "Lines an input did not ship, by reason (filtered, sampled).",
                  "input", "reason")
OUTBOX_DROPPED = counter("inferwatch_logs_outbox_dropped_total",
                         "Chunks of lines an output lost: dropped past its outbox's bounds "
                         "(full, expired, corrupt) or refused by the receiver (rejected).",
                         "output", "reason")
TRUNCATED = counter("inferwatch_logs_truncated_lines_total",
                    "Lines (or multi-line records) longer than max_line_bytes, cut there.",
                    "input")
DUPLICATES = counter("inferwatch_logs_duplicates_total",
                     "Lines read again after a restart that may already have been committed "
                     "(at most one batch per file).", "input")
ROTATIONS = counter("inferwatch_logs_rotations_total",
                    "Rotations noticed, by kind (truncated, copy_followed, inode_reused, "
                    "rotated_found).", "input", "kind")
RESENT = counter("inferwatch_logs_resent_total",
                 "Lines an output sent again after a restart because the previous process "
                 "was killed while sending them (at most one read of its outbox).", "output")
CHECKPOINT_CORRUPT = counter("inferwatch_logs_checkpoints_corrupt_total",
                             "Checkpoint files found unreadable at start (moved aside; the "
                             "files are read from their start).", "input")
FILE_ERRORS = counter("inferwatch_logs_file_errors_total",
                      "Files that could not be opened or read (retried), by reason (open, read).",
                      "input", "reason")
FILES_OVER_LIMIT = gauge("inferwatch_logs_files_over_limit",
                         "Files the globs found but not followed: past the input's max_files.",
                         "input")
FILES = gauge("inferwatch_logs_files", "Files an input follows now.", "input")
FILES_UNLABELLED = gauge("inferwatch_logs_files_unlabelled",
                         "Files beyond max_file_labels, summed into file=\"_other\".", "input")
LAG_BYTES = gauge("inferwatch_logs_lag_bytes",
                  "Bytes of a file not yet committed to the outboxes.", "input", "file")
LAG_SECONDS = gauge("inferwatch_logs_lag_seconds",
                    "How long a file has had bytes not yet read (0 when caught up).",
                    "input", "file")
OUTPUT_UP = gauge("inferwatch_logs_output_up",
                  "1 when the output's last delivery succeeded.", "output")
OUTPUT_ERRORS = counter("inferwatch_logs_output_errors_total",
                        "Failed deliveries (retried), by reason.", "output", "reason")
OUTBOX_BYTES = gauge("inferwatch_logs_outbox_bytes",
                     "Bytes of lines waiting in an output's outbox.", "output")
OUTBOX_OLDEST = gauge("inferwatch_logs_outbox_oldest_age_seconds",
                      "Age of the oldest chunk waiting in an output's outbox.", "output")
