"""Turn replay's JSON lines into one self-contained HTML page (ECharts embedded, no CDN).

The page opens from a mail attachment: the data, the charting library and our few lines of
chart code are all inside it. Numbers are rounded to five significant digits and the drift
heatmap is sent as a matrix, so 1,000 windows of 50 features stay well under a few MB.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

# Classification and regression metrics a window may carry, in the order they are drawn.
METRICS = ("accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "mae", "rmse", "r2")
MAX_FEATURES = 200  # heatmap rows, the most drifting first
# Per stream, the latest; an event without a model belongs to every stream, so without a
# bound the page grows as streams x events (50 streams, 20,000 GPU events: 84 MB).
MAX_EVENTS = 1000


@dataclass
class Stream:
    """The windows and events of one model version and window length."""

    model: str
    version: str
    window: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _num(value: Any) -> float | None:
    """A JSON-safe number with five significant digits, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    rounded = float(f"{value:.5g}")
    return rounded if math.isfinite(rounded) else float(value)  # 1.79769e308 rounds up to inf


def _scalar(value: Any) -> float | None:
    """A metric as one number: multiclass metrics are drawn by their macro average."""
    if isinstance(value, dict):
        return _num(value.get("macro"))
    return _num(value)


def _millis(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def group(lines: Iterable[dict[str, Any]]) -> list[Stream]:
    """Windows by (model, version, window length); each event goes to its model's streams."""
    streams: dict[tuple[str, str, str], Stream] = {}
    events: list[dict[str, Any]] = []
    for line in lines:
        if line.get("type") == "window":
            key = (str(line.get("model")), str(line.get("model_version", "")),
                   str(line.get("window", "")))
            streams.setdefault(key, Stream(*key)).windows.append(line)
        elif line.get("type") == "event":
            events.append(line)
    for stream in streams.values():
        stream.windows.sort(key=lambda w: (w.get("end", ""), w.get("final", False)))
        stream.events = [e for e in events if _belongs(e, stream)]
    return sorted(streams.values(), key=lambda s: (s.model, s.version, s.window))


def _belongs(event: dict[str, Any], stream: Stream) -> bool:
    attributes = event.get("attributes") or {}
    if attributes.get("model") not in (None, stream.model):
        return False
    version = attributes.get("model_version")
    return version in (None, "", stream.version)


def _latest(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per window: the final one where replay printed both."""
    by_end: dict[str, dict[str, Any]] = {}
    for window in windows:
        by_end[window.get("end", "")] = window
    return [by_end[end] for end in sorted(by_end)]


def _metrics(windows: list[dict[str, Any]]) -> dict[str, dict[str, list[float | None]]]:
    out: dict[str, dict[str, list[float | None]]] = {}
    for name in METRICS:
        realized = [_scalar((w.get("metrics") or {}).get(name)) for w in windows]
        estimated = [_scalar((w.get("estimated") or {}).get(name)) for w in windows]
        if not any(v is not None for v in realized + estimated):
            continue
        error = [_num(((w.get("estimated") or {}).get("error") or {}).get(name))
                 for w in windows]
        gap = [_num((w.get("estimation_gap") or {}).get(name)) for w in windows]
        out[name] = {"realized": realized, "estimated": estimated, "error": error, "gap": gap}
    return out


def _drift(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Effect over threshold per feature and window (1 is the threshold), worst features first."""
    rows: dict[str, list[float | None]] = {}
    for i, window in enumerate(windows):
        features = ((window.get("drift") or {}).get("features")) or {}
        for name, result in features.items():
            ratio = _num(result.get("ratio")) if isinstance(result, dict) else None
            rows.setdefault(name, [None] * len(windows))[i] = ratio
    order = sorted(rows, key=lambda f: -max((v for v in rows[f] if v is not None), default=0))
    kept = order[:MAX_FEATURES]
    return {"features": kept, "ratio": [rows[f] for f in kept],
            "distributions": _distributions(windows, kept[:3])}


def _distributions(windows: list[dict[str, Any]], features: list[str]) -> list[dict[str, Any]]:
    """Reference against current bins of the top features, where the drift monitor gave them."""
    out: list[dict[str, Any]] = []
    for window in reversed(windows):
        found = ((window.get("drift") or {}).get("features")) or {}
        for name in features:
            bins = (found.get(name) or {}).get("histogram")
            if isinstance(bins, dict) and not any(d["feature"] == name for d in out):
                out.append({"feature": name, "end": window.get("end"), **bins})
    return out


def _quality(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per feature and issue: the share of rows in the last window and the worst window."""
    seen: dict[tuple[str, str], list[float]] = {}
    last: dict[tuple[str, str], float] = {}
    for window in windows:
        features = ((window.get("quality") or {}).get("features")) or {}
        for feature, issues in features.items():
            for issue, ratio in (issues or {}).items():
                if (value := _num(ratio)) is not None:
                    seen.setdefault((feature, issue), []).append(value)
                    last[(feature, issue)] = value
    return [{"feature": f, "issue": i, "last": last[(f, i)], "max": max(v)}
            for (f, i), v in sorted(seen.items(), key=lambda kv: -max(kv[1]))]


def _fairness(windows: list[dict[str, Any]]) -> dict[str, Any] | None:
    for window in reversed(windows):
        if fair := window.get("fairness"):
            groups = [{"group": name, **{k: _num(v) for k, v in (rates or {}).items()}}
                      for name, rates in sorted((fair.get("groups") or {}).items())]
            summary = {k: _num(v) for k, v in fair.items() if k != "groups"}
            return {"end": window.get("end"), "groups": groups, "summary": summary}
    return None


def _event(event: dict[str, Any]) -> dict[str, Any]:
    attributes = event.get("attributes") or {}
    detail = ", ".join(f"{k}={v}" for k, v in attributes.items()
                       if k not in ("model", "model_version"))
    return {"t": _millis(event["ts"]) if event.get("ts") else None, "kind": event.get("kind"),
            "severity": event.get("severity"), "detail": detail[:300]}


def payload(stream: Stream) -> dict[str, Any]:
    windows = _latest(stream.windows)
    return {
        "model": stream.model, "version": stream.version, "window": stream.window,
        "t": [_millis(w["end"]) for w in windows], "final": [bool(w.get("final")) for w in windows],
        "n": [w.get("n") for w in windows], "n_labeled": [w.get("n_labeled") for w in windows],
        "metrics": _metrics(windows), "drift": _drift(windows), "quality": _quality(windows),
        "fairness": _fairness(windows), "events": [_event(e) for e in stream.events[-MAX_EVENTS:]],
        "events_total": len(stream.events),
    }


def _asset(name: str) -> str:
    return resources.files("plugins.ingest.report").joinpath(name).read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    """JSON inside a <script> element: "<" only appears in strings, where \\u003c means the same
    to JSON.parse and nothing can close the element or open a comment."""
    return text.replace("<", "\\u003c")


MARKERS = re.compile(r"\{\{TITLE\}\}|/\*ECHARTS\*/|/\*APP\*/|/\*DATA\*/")


def render(lines: Iterable[dict[str, Any]], *, title: str = "inferwatch replay report",
           config: str = "") -> str:
    """The page; every marker is replaced in one pass, so no inserted text is searched again."""
    data = {"title": title, "config": config, "streams": [payload(s) for s in group(lines)]}
    parts = {
        "{{TITLE}}": html.escape(title),
        "/*ECHARTS*/": _asset("echarts.min.js").replace("</script", "<\\/script"),
        "/*APP*/": _asset("app.js"),
        "/*DATA*/": _script_safe(json.dumps(data, separators=(",", ":"), allow_nan=False)),
    }
    return MARKERS.sub(lambda match: parts[match.group(0)], _asset("page.html"))
