"""Samples redacted before anything keeps them (the log shipper's engine, agent/redact.py).

The request id, and every string feature value (and integers long enough to be a card), at
any depth, go through the configured rules before a window, a reference, the label join or
an event sees them, so PII never lands in state_dir. A label's request id goes through the
same rules, so a pseudonymised id still joins its prediction (a masked one would not: every
id holding an email would become the same `[REDACTED:EMAIL]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from agent.model import Label, Sample
from agent.redact import Redactor
from plugins.ingest.decode import decode_features

_encode = msgspec.json.Encoder().encode


def redact_records(records: Sequence[Sample | Label],
                   redactor: Redactor) -> list[Sample | Label]:
    return [redact_record(r, redactor) for r in records]


def redact_record(record: Sample | Label, redactor: Redactor) -> Sample | Label:
    rid = redactor.redact(record.request_id) if record.request_id else record.request_id
    if isinstance(record, Label):
        return record if rid == record.request_id else msgspec.structs.replace(
            record, request_id=rid)
    changes: dict[str, Any] = {} if rid == record.request_id else {"request_id": rid}
    if record.features_json:
        text = bytes(record.features_json).decode("utf-8", "surrogateescape")
        if redactor.touches(text):  # decoded only then: most samples hold no PII
            clean = redactor.redact_value(decode_features(record.features_json))
            changes["features_json"] = msgspec.Raw(_encode(clean))
    elif record.features:
        clean = redactor.redact_value(record.features)
        if clean != record.features:
            changes["features"] = clean
    return msgspec.structs.replace(record, **changes) if changes else record
