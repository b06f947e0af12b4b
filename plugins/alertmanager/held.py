"""The alerts the Alertmanager sink holds, and what each Alertmanager has acknowledged.

An alert episode (fingerprint and `startsAt`) is held from its first event until every
Alertmanager has acknowledged its resolve; while it fires it is resent before its `endsAt`
runs out. The set lives in memory and in SQLite in the plugin's state dir (persist.py):
what changed is written before the events are acknowledged, so a restart keeps renewing
what fires and still delivers a resolve it had not sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import structlog

from agent.model import Event
from plugins.alertmanager.persist import Acks, Episodes, HeldDb

log = structlog.get_logger("inferwatch")


class Held(msgspec.Struct, kw_only=True):
    """One episode: its latest event, a version bumped on each change, when it changed."""

    event: Event
    version: int = 1
    changed: float = 0.0  # wall clock: survives a restart
    fallback: int = 0  # the version last handed to the fallback sink

    @property
    def firing(self) -> bool:
        return bool(self.event.data.get("status") == "firing")


class Acked(msgspec.Struct, array_like=True):
    """What one Alertmanager took of an episode: the version, and whether it saw it fire."""

    version: int = 0
    fired: bool = False


class State(msgspec.Struct, kw_only=True):
    alerts: dict[str, Held] = msgspec.field(default_factory=dict)
    acked: dict[str, dict[str, Acked]] = msgspec.field(default_factory=dict)


def episode(event: Event) -> str:
    return f"{event.data.get('fingerprint', '')}@{event.data.get('startsAt', '')}"


@dataclass
class HeldAlerts:
    path: Path
    urls: list[str]
    max_alerts: int
    state: State = field(default_factory=State)
    dropped: int = 0
    fallbacks: int = 0
    expired: int = 0

    def __post_init__(self) -> None:
        self.db = HeldDb(self.path)
        self._dirty: set[str] = set()
        self._dirty_acks: set[tuple[str, str]] = set()

    @property
    def unreadable(self) -> int:
        return self.db.unreadable

    def open(self) -> None:
        """Open the store and read what it holds (blocking: run in a thread)."""
        self.db.open()
        episodes, acks = self.db.load(self.urls)
        self.state = State(alerts=dict(_decoded(episodes, self.db)))
        for url, key, version, fired in acks:
            if key in self.state.alerts:
                self.state.acked.setdefault(url, {})[key] = Acked(version, fired)

    def changes(self) -> tuple[Episodes, Acks]:
        """What changed since the last call, encoded (on the loop: the state is not
        touched by the thread that writes it)."""
        alerts, acked = self.state.alerts, self.state.acked
        episodes = {k: (msgspec.json.encode(alerts[k]) if k in alerts else None)
                    for k in self._dirty}
        acks = {(u, k): (a.version, a.fired) for u, k in self._dirty_acks
                if (a := acked.get(u, {}).get(k)) is not None}
        self._dirty, self._dirty_acks = set(), set()
        return episodes, acks

    def flush(self) -> None:
        """Write what changed (blocking; for tests and tools: the sink writes in a thread)."""
        self.db.write(*self.changes())

    def touch(self, key: str) -> None:
        self._dirty.add(key)

    def apply(self, event: Event, now: float) -> bool:
        """Take an alert event; False for a replay: older than what is held, or a firing
        of an episode already resolved (a new episode has a new `startsAt`)."""
        key = episode(event)
        held = self.state.alerts.get(key)
        if held is not None and (event.ts < held.event.ts or event.id == held.event.id
                                 or (not held.firing and event.data.get("status") == "firing")):
            return False
        if held is None:
            self.state.alerts[key] = Held(event=event, changed=now)
            self._bound()
        else:
            held.event, held.version, held.changed = event, held.version + 1, now
        self._dirty.add(key)
        return True

    def _bound(self) -> None:
        """Over `max_alerts`: the oldest resolved episodes go first, then the oldest."""
        alerts = self.state.alerts
        while len(alerts) > self.max_alerts:
            victims = [k for k, h in alerts.items() if not h.firing] or list(alerts)
            oldest = min(victims, key=lambda k: alerts[k].changed)
            self.forget(oldest)
            self.dropped += 1

    def forget(self, key: str) -> None:
        self.state.alerts.pop(key, None)
        for acked in self.state.acked.values():
            acked.pop(key, None)
        self._dirty.add(key)

    def due(self, url: str, sent_at: dict[str, float], resend: float, now: float, *,
            limit: int, fresh_after: float = 0.0) -> list[tuple[str, Held, Acked]]:
        """What `url` needs now: changes it has not taken, and firing ones due for a resend
        that the engine still renews (changed at or after `fresh_after`, wall clock)."""
        acked = self.state.acked.get(url, {})
        out = []
        for key, held in self.state.alerts.items():
            mine = acked.get(key, Acked())
            if mine.version < held.version or (
                    held.firing and held.changed >= fresh_after
                    and now - sent_at.get(key, 0.0) >= resend):
                out.append((key, held, mine))
                if len(out) >= limit:
                    break
        return out

    def ack(self, url: str, sent: list[tuple[str, int]]) -> bool:
        """`url` took these (key, version), each as firing at least once (a resolve it had
        not seen fire went with a firing copy); True if that changed what is stored."""
        acked = self.state.acked.setdefault(url, {})
        changed = False
        for key, version in sent:
            if key not in self.state.alerts:
                continue
            mine = acked.setdefault(key, Acked())
            if version > mine.version or not mine.fired:
                mine.version, mine.fired = max(mine.version, version), True
                self._dirty_acks.add((url, key))
                changed = True
        return self._collect() or changed

    def _collect(self) -> bool:
        """Drop resolved episodes every Alertmanager has taken."""
        done = [k for k, h in self.state.alerts.items() if not h.firing and all(
            self.state.acked.get(u, {}).get(k, Acked()).version >= h.version
            for u in self.urls)]
        for key in done:
            self.forget(key)
        return bool(done)

    def renewing(self, fresh_after: float) -> list[str]:
        """Firing episodes the engine still renews: the ones the senders keep renewing."""
        return [k for k, h in self.state.alerts.items() if h.firing and h.changed >= fresh_after]

    def expire(self, before: float) -> bool:
        """Forget firing episodes no event renewed since `before` (the engine is gone: they
        were left to expire at their endsAt in Alertmanager); True if any went."""
        gone = [k for k, h in self.state.alerts.items() if h.firing and h.changed < before]
        for key in gone:
            self.forget(key)
        self.expired += len(gone)
        return bool(gone)

    def pending(self, url: str) -> tuple[int, float | None]:
        """How many changes `url` has not taken, and when the oldest was made."""
        acked = self.state.acked.get(url, {})
        times = [h.changed for k, h in self.state.alerts.items()
                 if acked.get(k, Acked()).version < h.version]
        return len(times), (min(times) if times else None)

    def undelivered(self) -> list[tuple[str, Held]]:
        """Changes no Alertmanager has taken (the fallback's business)."""
        return [(k, h) for k, h in self.state.alerts.items() if all(
            self.state.acked.get(u, {}).get(k, Acked()).version < h.version for u in self.urls)]

    def counts(self) -> dict[str, int]:
        firing = sum(1 for h in self.state.alerts.values() if h.firing)
        return {"firing": firing, "resolved": len(self.state.alerts) - firing}



def _decoded(episodes: list[tuple[str, bytes]], db: HeldDb) -> Iterator[tuple[str, Held]]:
    """The episodes that decode; one that does not (a bit flip, another version's shape)
    is skipped and counted, so it cannot keep the sink from starting."""
    decoder = msgspec.json.Decoder(Held)
    for key, raw in episodes:
        try:
            yield key, decoder.decode(raw)
        except msgspec.DecodeError as exc:
            db.unreadable += 1
            log.error("alertmanager state: an episode does not decode; skipped", key=key[:64],
                      error=str(exc)[:200])
