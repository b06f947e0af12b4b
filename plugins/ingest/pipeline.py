"""What happens to an accepted record: model check, sampling, then the windows and the join.

The same object runs in the agent (wall time) and in `inferwatch replay` (sample time), so a
configuration tuned on history behaves the same once deployed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import cast

from agent.model import Label, Sample
from agent.redact import Redactor
from plugins.ingest.columns import class_name
from plugins.ingest.models import Budget, ModelConfig, keep_by_hash
from plugins.ingest.redaction import redact_record, redact_records
from plugins.ingest.windows import WindowStage

UNKNOWN_MODEL = "unknown_model"


# Times replay accepts: from 1970 to about the year 5100. Beyond them a window's bounds could
# not be written as dates, and a value this large is most often milliseconds, not seconds.
TS_MIN, TS_MAX = 0.0, 1e11


def parse_ts(text: str | float | None) -> float | None:
    """Unix seconds or RFC 3339; None when absent, unreadable or outside [TS_MIN, TS_MAX)."""
    if text is None:
        return None
    if type(text) is float:
        value = text
    else:
        try:
            value = float(text)
        except ValueError:
            try:
                moment = dt.datetime.fromisoformat(str(text))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=dt.UTC)
                value = moment.timestamp()
            except (ValueError, OverflowError):
                return None
    return value if TS_MIN <= value < TS_MAX else None  # NaN fails both comparisons


class Pipeline:
    def __init__(self, models: dict[str, ModelConfig], windows: WindowStage,
                 join: Callable[[list[Sample | Label]], None],
                 redactor: Redactor | None = None) -> None:
        """`join` takes accepted records, a batch at a time, to the label join; `redactor`
        (the `redact` option) cleans every record first."""
        self.models, self.windows, self.join = models, windows, join
        self.redactor = redactor
        self.budgets = {name: Budget(m.max_samples_per_second, stratify=m.stratify)
                        for name, m in models.items() if m.max_samples_per_second}
        self.seen: Counter[str] = Counter()  # predictions offered, by model
        self.kept: Counter[str] = Counter()
        self.sampled_out: Counter[tuple[str, str]] = Counter()  # (model, rate|budget)
        self.counts: Counter[str] = Counter()

    def offer(self, record: Sample | Label, now: float, ts: float) -> str:
        """One record at its own time `ts` (replay): '' when accepted, else why not."""
        if self.redactor:
            record = redact_record(record, self.redactor)
        reason = self._admit(record, now)
        if not reason:
            if isinstance(record, Sample):
                if self.windows.add(record, ts, now):
                    self.join([record, *self.windows.early([record])])
            elif self.windows.wanted([record]):
                self.join([record])
        return reason

    def offer_many(self, records: Sequence[Sample | Label], now: float) -> dict[int, str]:
        """A batch that arrived at `now` (the agent): why not, by index, for those refused.

        Only the predictions a window keeps, and the labels that may be theirs, go on to the
        label join: at high rates most predictions are counted in a window and let go.
        """
        if self.redactor:
            records = redact_records(records, self.redactor)
        if (not self.models and not self.budgets and all(type(r) is Sample for r in records)
                and self.windows.admission.knows(cast("Sequence[Sample]", records))):
            counts = Counter(r.model for r in records)  # the fast path: keep every sample
            self.seen.update(counts)
            self.kept.update(counts)
            accepted, refused = records, {}
        else:
            refused = {i: why for i, r in enumerate(records) if (why := self._admit(r, now))}
            accepted = [r for i, r in enumerate(records) if i not in refused] \
                if refused else records
        samples = [r for r in accepted if type(r) is Sample]
        labels = self.windows.wanted([r for r in accepted if type(r) is Label]) \
            if len(samples) < len(accepted) else []  # first: one held back may be for below
        kept_samples = self.windows.add_many(samples, now) if samples else []
        kept: list[Sample | Label] = [*kept_samples, *self.windows.early(kept_samples), *labels]
        if kept:
            self.join(kept)
        return refused

    def _admit(self, record: Sample | Label, now: float) -> str:
        config = self.models.get(record.model)
        why = (UNKNOWN_MODEL if config is None and self.models
               else self.windows.admission.admit(record))  # too many models, or ''
        if why:
            return why
        rate = config.sample_rate if config is not None else 1.0
        if isinstance(record, Label):
            if not keep_by_hash(record.request_id, rate):
                return "sampled_out"  # its prediction was not kept either
            return ""
        self.seen[record.model] += 1
        if not keep_by_hash(record.request_id, rate):
            self.sampled_out[(record.model, "rate")] += 1
            return "sampled_out"
        budget = self.budgets.get(record.model)
        if budget is not None and not budget.take(class_name(record.prediction), now):
            self.sampled_out[(record.model, "budget")] += 1
            return "sampled_out"
        self.kept[record.model] += 1
        return ""
