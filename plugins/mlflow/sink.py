"""Each final window's results to MLflow: an experiment per model, a run per model version
(and window length), the window's end as the step; drift and quality events as run tags."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence

import structlog

from agent.components import Sink
from agent.model import Event
from plugins.mlflow.client import Mlflow, MlflowError
from plugins.mlflow.config import MlflowConfig

log = structlog.get_logger(__name__)
WINDOW_KINDS = ("quality.window", "drift.window")
TAG_KINDS = ("drift.detected", "quality.degraded", "retrain.requested")
_KEY = re.compile(r"[^A-Za-z0-9_\-. :]")  # what MLflow accepts in a key, "/" aside


def metric_key(*parts: str) -> str:
    """A key MLflow accepts: its characters, at most 250 of them, and its own normalised
    path (MLflow refuses "drift/..", "drift/a/../b" or "drift/" with a 400, and with it the
    window's whole batch). A part's own "/" is replaced, so a feature is one path level."""
    cleaned = []
    for part in parts:
        text = _KEY.sub("_", part.replace("/", "_"))[:120]
        cleaned.append(text.replace(".", "_") if not text.strip(".") else text)
    return "/".join(part or "_" for part in cleaned)


def window_metrics(event: Event) -> dict[str, float]:
    """The numbers of a quality.window or drift.window event, by MLflow metric key."""
    data, out = event.data, {}
    if event.kind == "quality.window":
        for section, prefix in (("metrics", ""), ("estimated", "estimated_"), ("gap", "gap_")):
            for name, value in (data.get(section) or {}).items():
                # multiclass: per class, and their macro average, the one logged
                out[metric_key(prefix + name)] = (value.get("macro") if isinstance(value, dict)
                                                  else value)
        out["cost"] = data.get("cost")
        out["samples"], out["labeled_samples"] = data.get("n"), data.get("n_labeled")
    else:
        for feature, found in (data.get("features") or {}).items():
            out[metric_key("drift", feature)] = (found or {}).get("ratio")
        out["drift_multivariate"] = data.get("multivariate")
        out["drift_detected"] = 1.0 if data.get("drifted") else 0.0
    return {k: float(v) for k, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


class MlflowSink(Sink):
    batch_size = 50

    def __init__(self, config: MlflowConfig) -> None:
        super().__init__("tracking")
        self.config = config
        self.client = Mlflow(config)
        self.experiments: dict[str, str] = {}
        self.runs: dict[tuple[str, str, str], str] = {}
        self.logged = 0
        self.refused: dict[str, int] = {}

    async def start(self) -> None:
        await self.client.open()

    async def stop(self) -> None:
        await self.client.close()

    async def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.kind in WINDOW_KINDS or event.kind in TAG_KINDS:
                try:
                    await self._deliver(event)
                except MlflowError as exc:  # retrying cannot help: count, log once, go on
                    reason = str(exc)
                    if reason not in self.refused:
                        log.warning("mlflow refused an event", kind=event.kind, reason=reason)
                    self.refused[reason] = self.refused.get(reason, 0) + 1

    async def _deliver(self, event: Event) -> None:
        attributes = event.attributes
        model = str(attributes.get("model") or "")
        if not model:
            return
        version = str(attributes.get("model_version") or "")
        window = str(attributes.get("window") or "")
        metrics: list[dict[str, object]] = []
        tags: list[dict[str, str]] = []
        if event.kind in WINDOW_KINDS:
            end = float(event.data.get("end") or 0)
            metrics = [{"key": k, "value": v, "timestamp": int(end * 1000), "step": int(end)}
                       for k, v in sorted(window_metrics(event).items())]
        else:
            tags = self._tags(event)
        key = (model, version, window)
        try:
            await self.client.log_batch(await self._run(key, event), metrics, tags)
        except MlflowError:
            if key not in self.runs:
                raise
            del self.runs[key]  # the run was deleted or archived in MLflow: find or make it anew
            await self.client.log_batch(await self._run(key, event), metrics, tags)
        self.logged += 1

    def _tags(self, event: Event) -> list[dict[str, str]]:
        summary = json.dumps({"ts": event.ts, "severity": event.severity,
                              "attributes": event.attributes, "data": event.data},
                             default=str, sort_keys=True)
        limit = self.config.max_tag_bytes
        if len(summary.encode()) > limit:
            summary = summary.encode()[:limit - 3].decode(errors="ignore") + "..."
        return [{"key": f"inferwatch.last.{event.kind}", "value": summary},
                {"key": f"inferwatch.last.{event.kind}.ts", "value": event.ts}]

    async def _run(self, key: tuple[str, str, str], event: Event) -> str:
        model, version, window = key
        if key in self.runs:
            return self.runs[key]
        name = f"{self.config.experiment_prefix}{model}"
        if name not in self.experiments:
            self.experiments[name] = await self.client.experiment(name)
        stream = hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]
        label = f"{model} v{version or '(none)'}" + (f" ({window})" if window else "")
        tags = {"inferwatch.model": model, "inferwatch.model_version": version,
                "inferwatch.window": window, "inferwatch.host": event.host}
        start = int(float(event.data.get("start") or event.data.get("end") or 0) * 1000)
        self.runs[key] = await self.client.run(self.experiments[name], stream, label, start,
                                               tags)
        return self.runs[key]

