"""Runs the command for the alerts routed here: on firing, and as configured on renewals,
repeats and resolves; at most `max_concurrent` at once. A failing script is counted and
logged, never retried: an action (a restart) repeated by a retry could do harm."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import structlog

from agent.alertroute import Alert, MalformedAlertError, alert_of, alert_routed
from agent.components import Sink
from agent.model import Event
from plugins.exec.config import ExecConfig
from plugins.exec.runner import Outcome, environment, run

log = structlog.get_logger("inferwatch")
MAX_TRACKED = 10_000  # alerts and groups remembered (bounded: alert label sets are input)


class ExecSink(Sink):
    durable: ClassVar[bool] = True
    batch_size = 16
    queue_size = 1000

    def __init__(self, config: ExecConfig, plugin: str) -> None:
        super().__init__("command")
        self.config, self.plugin = config, plugin
        self.runs: Counter[str] = Counter()  # by exit code, "timeout", "error"
        self.skipped: Counter[str] = Counter()  # renewal, grouped, malformed, resolve
        self.running = 0
        self.last_run: dict[str, float] = {}  # fingerprint -> loop time of its last run
        self.groups: dict[tuple[str, ...], set[str]] = {}  # group -> firing fingerprints
        self._slots = asyncio.Semaphore(config.max_concurrent)
        # A batch waits for its runs; at worst one alert's, one after the other, each up to
        # the timeout and the kill's grace. Past this the supervisor would retry the batch
        # (running actions twice), so it must never be the one to give up first.
        self.deliver_timeout = (  # type: ignore[misc]
            self.batch_size * (float(config.timeout) + 2.0) + 5.0)

    async def deliver(self, events: Sequence[Event]) -> None:
        """Different alerts run side by side; one alert's runs in the order of its events
        (a resolve action never overtakes the firing one)."""
        chains: dict[str, list[tuple[Event, Alert]]] = {}
        for event in events:
            if (alert := self._choose(event)) is not None:
                chains.setdefault(alert.fingerprint, []).append((event, alert))
        await asyncio.gather(*(self._chain(chain) for chain in chains.values()))

    async def _chain(self, chain: list[tuple[Event, Alert]]) -> None:
        for event, alert in chain:
            await self._run(event, alert)

    def _choose(self, event: Event) -> Alert | None:
        if not alert_routed(self.config, self.plugin, event):
            return None
        try:
            alert = alert_of(event)
        except MalformedAlertError as exc:
            self.skipped["malformed"] += 1
            log.warning("malformed alert event skipped", id=event.id, error=str(exc))
            return None
        reason = self._skip_reason(alert)
        if reason:
            self.skipped[reason] += 1
            return None
        self._remember(alert)  # at the decision: a renewal in the same batch sees it
        return alert

    def _skip_reason(self, alert: Alert) -> str:
        """Why this alert does not run the command now ("" when it does)."""
        members = self._group(alert)
        if alert.status == "resolved":
            members.discard(alert.fingerprint)
            self.last_run.pop(alert.fingerprint, None)
            if not self.config.on_resolve:
                return "resolve"
            return "grouped" if members else ""
        if alert.renewal:
            return "" if self._renew(alert) else "renewal"
        first = not members - {alert.fingerprint}
        members.add(alert.fingerprint)
        return "" if first else "grouped"

    def _renew(self, alert: Alert) -> bool:
        if self.config.on_renewal:
            return True
        repeat = self.config.repeat_interval
        last = self.last_run.get(alert.fingerprint)
        now = asyncio.get_running_loop().time()
        return repeat is not None and last is not None and now - last >= repeat

    def _group(self, alert: Alert) -> set[str]:
        key = (tuple(alert.labels.get(n, "") for n in self.config.group_by)
               if self.config.group_by else (alert.fingerprint,))
        if key not in self.groups and len(self.groups) >= MAX_TRACKED:
            self.groups.pop(next(iter(self.groups)))  # the oldest group goes
        members = self.groups.setdefault(key, set())
        if not members and alert.status == "resolved":
            self.groups.pop(key)
        return members

    async def _run(self, event: Event, alert: Alert) -> None:
        async with self._slots:
            self.running += 1
            try:
                outcome = await run(self.config.command, environment(event, alert),
                                    event.to_json() + b"\n", float(self.config.timeout),
                                    self.config.output_bytes)
            finally:
                self.running -= 1
        self.runs[outcome.status] += 1
        self._log(alert, outcome)

    def _remember(self, alert: Alert) -> None:
        if alert.status == "firing":
            if len(self.last_run) >= MAX_TRACKED:
                self.last_run.pop(next(iter(self.last_run)))
            self.last_run[alert.fingerprint] = asyncio.get_running_loop().time()

    def _log(self, alert: Alert, outcome: Outcome) -> None:
        fields = {"alertname": alert.alertname, "fingerprint": alert.fingerprint,
                  "status": alert.status, "exit": outcome.status, "output": outcome.output}
        if outcome.status == "0":
            log.info("exec command finished", **fields)
        else:
            log.warning("exec command failed", **fields)
