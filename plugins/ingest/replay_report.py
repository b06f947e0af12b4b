"""What `inferwatch replay` says about a run besides its JSON lines: which monitors ran, what
became of every label, and, when the output holds no monitor results, why.

A replay that prints `"metrics": {}` and `labels_joined: 0` without a word sends a user
hunting; these notes name the cause and the setting that changes it.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Every label read ends in one of these. joined: matched its prediction within label_ttl and
# counted in its windows; duplicate: a later label for the same request (it replaces the
# earlier one); expired: its prediction was older than label_ttl when it came; unmatched:
# no prediction within label_ttl (or none at all); sampled_out: the sampling policy left its
# prediction out; unknown_model: not a declared model; outside_windows: its prediction came
# but no window held it any more (a full window keeps a uniform sample of its rows).
LABEL_OUTCOMES = ("joined", "duplicate", "expired", "unmatched", "sampled_out",
                  "unknown_model", "outside_windows")
MOST = 0.5  # "most labels": the share above which a cause earns a hint
DAY = 86400.0


def turned_off(path: Path | None) -> set[str]:
    """The plugins a config file turns off in so many words (`enabled = false`).

    Replay runs every monitor unless the file says so: a file written for the agent (where
    monitors are off by default) would otherwise replay with none, silently.
    """
    if path is None:
        return set()
    with path.open("rb") as fh:  # already read and validated by load_config
        plugins = tomllib.load(fh).get("plugins", {})
    return {name for name, table in plugins.items()
            if isinstance(table, dict) and table.get("enabled") is False}


@dataclass
class LabelTally:
    """Labels read from the files, and what became of those that did not reach the join."""

    read: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # sampled_out, unknown_model

    def outcomes(self, join: Mapping[str, int]) -> dict[str, int]:
        """One count per outcome; they add up to `read`."""
        out = {name: int(join.get(name, 0)) for name in LABEL_OUTCOMES[:4]}
        out |= {name: self.refused[name] for name in ("sampled_out", "unknown_model")}
        # The rest: held back by the window filter, or for a prediction no window kept.
        out["outside_windows"] = max(0, self.read - sum(out.values()))
        return {"read": self.read, **out}


def label_notes(labels: Mapping[str, int], ttl: float, longest_late: float) -> list[str]:
    """A hint naming the setting when most labels expired, or found no prediction."""
    read = labels["read"]
    if not read:
        return []
    notes = []
    if labels["expired"] > MOST * read:
        wanted = max(1, int(-(-longest_late // DAY)))
        notes.append(
            f"{labels['expired']} of {read} labels expired: they came more than label_ttl "
            f"({_days(ttl)}) after their prediction (up to {_days(longest_late)}). Set a "
            f"longer one in the config file (-c): [plugins.ingest] label_ttl = \"{wanted}d\"")
    if labels["unmatched"] > MOST * read:
        notes.append(
            f"{labels['unmatched']} of {read} labels found no prediction within label_ttl "
            f"({_days(ttl)}): check that labels carry the model and request_id of their "
            "prediction, and that --samples holds those predictions")
    return notes


def silence_notes(*, monitors: Iterable[str], off: Iterable[str], path: Path | None,
                  windows: int, with_results: int, samples: int,
                  labels: Mapping[str, int]) -> list[str]:
    """Why the output carries no monitor results (empty when some window has them)."""
    running = sorted(monitors)
    if not running:
        stopped = sorted(off)
        if stopped:
            return [f"no monitor ran: {path} turns off {', '.join(stopped)} "
                    "(enabled = false); drop those lines to replay with them"]
        return ["no monitor ran: no installed plugin provides one (see `inferwatch plugins`)"]
    if with_results:
        return []
    if not windows:
        return [f"no monitor results: no window closed ({samples} samples accepted; see "
                "`rejected` below)"]
    why = []
    if "quality" in running:
        why.append(f"quality needs labels or scores (labels joined: {labels['joined']} of "
                   f"{labels['read']})")
    if "drift" in running:
        why.append("drift compares with a reference and, without --reference or a configured "
                   "one, first captures it from each model version's first reference_samples "
                   "rows")
    if off:
        why.append(f"{path} turns off {', '.join(sorted(off))}")
    note = f"no monitor results in {windows} windows from {', '.join(running)}"
    return [f"{note}: {'; '.join(why)}" if why else note]


def stream_summary(streams: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, version): what replay counted and what monitors contributed."""
    return [{"model": model, "model_version": version, **entry}
            for (model, version), entry in sorted(streams.items())]


def _days(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.4g}d"
    return f"{seconds / 3600:.3g}h" if seconds >= 3600 else f"{seconds:.3g}s"


@dataclass
class Disorder:
    """Records of one file earlier than a record before them. Each is counted at the latest
    time before it (as the agent counts a sample at its arrival): taken at its own time, it
    would reopen windows already printed, and print them again, once per such record."""

    records: int = 0
    lag: float = 0.0  # the furthest back one went, in seconds
    cut: str = ""  # why the file could not be read to its end (a truncated gzip file)


def disorder_notes(disorder: dict[Path, Disorder]) -> list[str]:
    """Name each file that is not in time order, and what replay did about it."""
    return [f"{d.records} records in {path} were earlier than a record before them (by up "
            f"to {_days(d.lag)}): the file is not in time order. Each was counted at the "
            "latest time before it, as the agent counts a sample when it arrives; sort the "
            "file by `ts` for windows by the records' own times"
            for path, d in disorder.items() if d.records] + [
            f"{path} could not be read to its end ({d.cut}): what came before that point "
            "was replayed, the rest was not" for path, d in disorder.items() if d.cut]
