"""Publishes the broker refused (MQTT 5 PUBACK/PUBREC reason code >= 0x80): kept, counted, retried.

A refusal is an answer, not a delivery: an ACL that denies a topic, a quota, a payload the
broker will not take. The rows stay in the outbox and each reason is counted and logged once
per episode. A refused topic is then held back (not sent) until a retry that comes after a
growing delay, as a pass over the outbox from its start: a permanent refusal neither spins
nor blocks the topics accepted behind it. (mosquitto 2.0 with `max_queued_messages 0` also
drops the connection after each refusal; holding the topic keeps that to one per retry.)
"""

from __future__ import annotations

import structlog

from agent.supervisor import Backoff

log = structlog.get_logger("inferwatch")
MAX_HELD_TOPICS = 1024  # beyond, a refused topic is simply sent (and refused) again

# MQTT 5.0 §3.4.2.1 (PUBACK) and §3.5.2.1 (PUBREC): the failure codes a broker may answer.
REASONS = {
    0x80: "unspecified_error",
    0x83: "implementation_specific_error",
    0x87: "not_authorized",
    0x90: "topic_name_invalid",
    0x91: "packet_identifier_in_use",
    0x97: "quota_exceeded",
    0x99: "payload_format_invalid",
}
Row = tuple[int, str, bytes]


def reason_name(code: int) -> str:
    """A bounded label value: the spec's name, or `other` for a code outside it."""
    return REASONS.get(code, "other")


class Refusals:
    """The totals by reason, the topics held back, and when they are tried again."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.retry_at: float | None = None  # loop time of the next pass from the start
        self._held: set[str] = set()
        self._window: set[int] = set()  # outbox seqs refused in the window being sent
        self._since_retry = False  # something was refused since the last pass began
        self._logged: set[str] = set()
        self._backoff = Backoff(1.0, 60.0)

    def refuse(self, seq: int, topic: str, code: int, now: float) -> None:
        self._window.add(seq)
        self._since_retry = True
        if len(self._held) < MAX_HELD_TOPICS:
            self._held.add(topic)
        if self.retry_at is None:
            self.retry_at = now + self._backoff.next()
        reason = reason_name(code)
        self.totals[reason] = self.totals.get(reason, 0) + 1
        if reason not in self._logged:  # one line per reason and episode, not one per event
            self._logged.add(reason)
            log.warning("MQTT broker refused a publish; events stay in the outbox and are "
                        "retried with backoff", reason=reason, reason_code=code, topic=topic)

    def sendable(self, rows: list[Row]) -> list[Row]:
        """The rows to publish now: not those of a topic held back."""
        self._window.clear()
        if not self._held:
            return rows
        return [row for row in rows if row[1] not in self._held]

    def accepted(self, sent: list[Row]) -> list[int]:
        """The sequence numbers of the sent rows that the broker did not refuse."""
        return [seq for seq, _, _ in sent if seq not in self._window]

    def retry_due(self, now: float) -> bool:
        """True once the delay is over: release the held topics, read from the start."""
        if self.retry_at is None or now < self.retry_at:
            return False
        self.retry_at, self._since_retry = None, False
        self._held.clear()
        return True

    def caught_up(self) -> None:
        """The outbox is read to its end; with no refusal since the last retry, it is over."""
        if not self._since_retry and self.retry_at is None:
            self._backoff.reset()
            self._logged.clear()
