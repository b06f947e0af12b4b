"""Model-output ingestion over a local Unix socket (the client SDK's path).

Records are decoded, validated and counted here. The window stage that feeds monitors
(the rest of issue #5) consumes what `IngestService.consumer` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec
import structlog

from agent import hookimpl
from agent.components import Collector, Component, Service
from agent.config import Duration, FieldError, PluginConfig, Secret, parse_listen
from agent.context import PluginContext
from agent.metrics import Accumulator, counter, gauge
from agent.model import Label, Sample
from plugins.ingest.decode import decode_many
from plugins.ingest.join import LabelJoin
from plugins.ingest.stage import JoinStage

log = structlog.get_logger("inferwatch")
OTHER = "_other"

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
BYTES = counter("inferwatch_ingest_received_bytes_total", "Bytes read from clients.")


class IngestConfig(PluginConfig):
    enabled: bool = False
    socket_path: str = ""  # default: $RUNTIME_DIRECTORY/ingest.sock, else <state_dir>/ingest.sock
    socket_mode: Annotated[int, msgspec.Meta(ge=0, le=0o777)] = 0o660  # owner and group
    max_record_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 << 20)] = 1 << 20
    max_models: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100  # label values bound
    http_listen: str = ""  # e.g. "127.0.0.1:9880"; empty: no HTTP endpoint
    token: Secret | None = None  # bearer token for HTTP, from {file} or {env}
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 16 << 20
    body_timeout: Duration = Duration(30.0)  # a client slower than this is cut off
    label_ttl: Duration = Duration(7 * 86400.0)  # how long a prediction waits for its label
    max_waiting: Annotated[int, msgspec.Meta(ge=1)] = 10_000_000  # per table, oldest dropped
    join_queue: Annotated[int, msgspec.Meta(ge=1)] = 100_000  # in memory, before the join

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.http_listen:
            try:
                parse_listen(self.http_listen)
            except ValueError as exc:
                raise FieldError("http_listen", str(exc)) from None


class Tally:
    """Counts by model, with model names capped so clients cannot make series unbounded."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self.received: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.bytes = 0
        self.consumer: Callable[[Sample | Label], None] | None = None  # the window stage, next
        self._models: set[str] = set()

    def model(self, name: str) -> str:
        if name in self._models or len(self._models) < self.max_models:
            self._models.add(name)
            return name
        return OTHER

    def count(self, record: Sample | Label | None, reason: str) -> None:
        if record is None:
            self.rejected[("", reason)] += 1
            return
        model = self.model(record.model)
        (self.received if isinstance(record, Sample) else self.labels)[model] += 1
        if self.consumer is not None:
            self.consumer(record)


class IngestService(Service):
    def __init__(self, path: Path, config: IngestConfig, tally: Tally) -> None:
        super().__init__("socket")
        self.path, self.config, self.tally = path, config, tally
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a killed agent
        self._server = await asyncio.start_unix_server(self._handle, str(self.path))
        os.chmod(self.path, self.config.socket_mode)  # noqa: PTH101 - a socket, not a file we own by Path
        log.info("ingestion socket listening", path=str(self.path))

    async def run(self) -> None:
        assert self._server is not None  # noqa: S101 - set by start()
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tally.connections += 1
        try:
            await self._lines(reader)
        except (ConnectionError, OSError):
            pass
        finally:
            self.tally.connections -= 1
            writer.close()

    async def _lines(self, reader: asyncio.StreamReader) -> None:
        """Split on newlines ourselves: an oversized line is skipped, never buffered whole."""
        limit, buffer, skipping = self.config.max_record_bytes, bytearray(), False
        while chunk := await reader.read(262_144):
            self.tally.bytes += len(chunk)
            lines, start = [], 0
            while (end := chunk.find(b"\n", start)) != -1:
                if skipping:
                    skipping = False
                    self.tally.rejected[("", "too_large")] += 1
                elif buffer:
                    buffer += chunk[start:end]
                    lines.append(bytes(buffer))
                    buffer.clear()
                else:
                    lines.append(chunk[start:end])
                start = end + 1
            self._accept(lines, limit)
            if not skipping:
                buffer += chunk[start:]
                skipping = len(buffer) > limit
                if skipping:
                    buffer.clear()
        self._accept([bytes(buffer)], limit)  # a last line without its newline: truncated?

    def _accept(self, lines: list[bytes], limit: int) -> None:
        usable = []
        for line in lines:
            if len(line) > limit:
                self.tally.rejected[("", "too_large")] += 1
            elif line.strip():
                usable.append(line)
        if usable:
            for record, reason in decode_many(usable):
                self.tally.count(record, reason)


class IngestStats(Collector):
    blocking = False

    def __init__(self, tally: Tally, stage: JoinStage) -> None:
        super().__init__("stats")
        self.tally, self.stage = tally, stage

    async def collect(self, out: Accumulator) -> None:
        for model, count in self.tally.received.items():
            out.add(RECEIVED, count, model=model)
        for model, count in self.tally.labels.items():
            out.add(LABELS, count, model=model)
        for (model, reason), count in self.tally.rejected.items():
            out.add(REJECTED, count, model=model, reason=reason)
        out.add(CONNECTIONS, self.tally.connections)
        out.add(BYTES, self.tally.bytes)
        for model, count in self.stage.joined.items():
            out.add(JOINED, count, model=self.tally.model(model))
        for kind, count in self.stage.waiting.items():
            out.add(WAITING, count, kind=kind)
        counts = self.stage.store.counts
        for reason in ("expired_predictions", "unmatched_labels", "dropped_predictions",
                       "dropped_labels"):
            out.add(JOIN_LOST, counts[reason], reason=reason)
        out.add(JOIN_LOST, self.stage.dropped, reason="join_queue_full")


@hookimpl
def inferwatch_config_model() -> type[PluginConfig]:
    return IngestConfig


@hookimpl
def inferwatch_components(config: PluginConfig, ctx: PluginContext) -> list[Component]:
    assert isinstance(config, IngestConfig)  # noqa: S101 - validated with our model
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    path = Path(config.socket_path or (Path(runtime) if runtime else ctx.state_root) /
                "ingest.sock")
    tally = Tally(config.max_models)
    store = LabelJoin(ctx.state_root / "ingest" / "labels.db", ttl=float(config.label_ttl),
                      max_waiting=config.max_waiting)
    stage = JoinStage(store, config.join_queue)
    tally.consumer = stage.offer
    components: list[Component] = [stage, IngestService(path, config, tally),
                                   IngestStats(tally, stage)]
    if config.http_listen:
        from plugins.ingest.http import IngestHttp  # noqa: PLC0415

        components.append(IngestHttp(config, tally))
    return components
