"""What the core hands each plugin: its config, its metrics store, a logger, and the bus."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent.config import PluginConfig
from agent.intake import WAIT_SECONDS, Receiver, Record, SampleIntake, Submitted
from agent.metrics import PluginMetrics
from agent.model import Event, Severity
from agent.plain import plain, plain_event
from agent.readback import Families, no_families

if TYPE_CHECKING:  # numpy is imported only where windows are built
    from agent.httpd import Request, Response
    from agent.window import Window

    Route = Callable[[Request], Response]


@dataclass
class PluginContext:
    plugin: str
    config: PluginConfig
    host_id: str
    state_root: Path
    metrics: PluginMetrics
    emitter: Callable[[Event], bool]
    window_sink: Callable[[Window], None] = lambda _window: None
    config_path: Path | None = None  # the agent's config file (None: built-in defaults)
    extra_plugins: tuple[str, ...] = ()  # `-p MODULE` plugins the agent was started with
    # Every plugin's hooks (pluggy's HookRelay): `ctx.hook.inferwatch_<name>(...)` asks all
    # plugins, e.g. for the drift statistics they add. None outside an agent or a replay.
    hook: Any = None
    intake: SampleIntake = field(default_factory=SampleIntake)  # one per agent
    # Every series the agent exports, read back in-process (agent.readback); call on the loop.
    read_metrics: Callable[[], Families] = no_families
    # GET routes on the metrics listener (same TLS and auth as /metrics), path -> handler.
    routes: dict[str, Route] | None = None

    def serve(self, path: str, handler: Route | None) -> None:
        """Answer GET `path` on the metrics listener with `handler` (None: stop answering).
        The handler runs on the event loop and must be quick; a core path cannot be taken."""
        if self.routes is None:
            return
        if handler is None:
            self.routes.pop(path, None)
        else:
            self.routes[path] = handler

    def publish(self, window: Window) -> None:
        """Hand a closed window to every monitor (call on the event loop)."""
        self.window_sink(window)

    @property
    def log(self) -> Any:
        return structlog.get_logger("inferwatch").bind(plugin=self.plugin)

    def state_dir(self) -> Path:
        """The plugin's own folder under state_dir, created on first use."""
        path = self.state_root / "plugins" / self.plugin
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        return path

    def state_file(self, prefix: str, key: Sequence[str]) -> Path:
        """`<state_dir>/<prefix>-<hash of key>.json`: per model and version, whatever their
        names hold. Not created: call state_dir() before writing."""
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
        return self.state_root / "plugins" / self.plugin / f"{prefix}-{digest}.json"

    def event(
        self,
        kind: str,
        *,
        severity: Severity = Severity.INFO,
        data: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Event:
        # Plain Python from the start: a plugin may encode the event itself (a webhook).
        return Event(
            kind=kind, source=self.plugin, host=self.host_id, severity=severity,
            data=plain(data or {}), attributes=plain(attributes or {}),
        )

    def emit(self, event: Event) -> bool:
        """Put an event on the bus from any thread; False if the bus was full and it was dropped."""
        return self.emitter(plain_event(event))

    def submit(self, records: Sequence[Record], *, timeout: float = WAIT_SECONDS) -> Submitted:
        """Feed samples and labels into ingestion, as if they came through the Unix socket.

        Each record is an NDJSON line (bytes or str) or a dict, a sample or a label; at most
        agent.intake.MAX_RECORDS a call. Callable from any thread (a worker thread waits up
        to `timeout` for the event loop). Without ingestion enabled the batch is refused whole
        (`Submitted.refused`) and counted; retry it later if it must not be lost.
        """
        return self.intake.submit(self.plugin, records, timeout)

    def attach_receiver(self, receiver: Receiver) -> None:
        """Become the target of every plugin's submit() (the ingest plugin, on start)."""
        self.intake.attach(receiver)

    def detach_receiver(self, receiver: Receiver) -> None:
        """Stop receiving submissions (on stop); a no-op if another receiver took over."""
        self.intake.detach(receiver)
