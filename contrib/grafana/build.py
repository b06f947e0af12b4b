"""Write the three Grafana dashboards (host and GPUs, models, the agent) as importable JSON.

Run `python contrib/grafana/build.py` after changing a panel (`--check` only compares); the
test suite checks that the
JSON files in this folder are what this script writes, and runs every query they hold
against a real Prometheus scraping a real agent (tests/integration/test_grafana.py).
Standard library only, so it runs anywhere Python does.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SCHEMA_VERSION = 39  # Grafana 10.4 and later import it as it is
HOST = 'instance=~"$host"'
MODEL = 'instance=~"$host", model=~"$model", model_version=~"$model_version"'
GPU = 'instance=~"$host", gpu=~"$gpu"'


@dataclass(frozen=True)
class Panel:
    """One panel: each target is (PromQL, legend). Units are Grafana's unit ids."""

    title: str
    targets: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[Panel]


def _variable(name: str, label: str, query: str, *, include_all: bool = True) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
        "refresh": 2, "sort": 1, "multi": True, "includeAll": include_all,
        "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


HOST_VAR = _variable("host", "Host", "label_values(inferwatch_build_info, instance)")
MODEL_VARS = [
    HOST_VAR,
    _variable("model", "Model",
              f'label_values(inferwatch_model_window_samples{{{HOST}}}, model)'),
    _variable("model_version", "Version", 'label_values(inferwatch_model_window_samples'
              '{instance=~"$host", model=~"$model"}, model_version)'),
]
GPU_VARS = [HOST_VAR, _variable("gpu", "GPU",
                                f'label_values(inferwatch_gpu_up{{{HOST}}}, gpu)')]


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = [{"datasource": DS, "expr": expr, "legendFormat": legend,
                "refId": chr(ord("A") + i), "range": True}
               for i, (expr, legend) in enumerate(panel.targets)]
    body: dict[str, Any] = {
        "id": pid, "type": panel.kind, "title": panel.title, "datasource": DS,
        "description": panel.description, "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": panel.options,
    }
    if panel.kind == "heatmap":
        body["options"] = {"calculate": False, "yAxis": {"axisPlacement": "left"},
                           "color": {"scheme": "Oranges", "mode": "scheme"}, **panel.options}
    return body


def _layout(rows: list[Row]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in rows:
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, pid, x, y))
            pid, x = pid + 1, x + panel.width
        y += 8
    return panels


def dashboard(uid: str, title: str, rows: list[Row], variables: list[dict[str, Any]],
              annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana",
                        "version": "10.4.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus",
                        "version": "1.0.0"}],
        "uid": uid, "title": title, "tags": ["inferwatch"], "editable": True,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s", "timezone": "", "graphTooltip": 1,
        "templating": {"list": variables},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana",
                                                                "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "name": "Annotations & Alerts",
                                  "type": "dashboard", "iconColor": "rgba(0, 211, 255, 1)"},
                                 *(annotations or [])]},
        "panels": _layout(rows),
    }


def _rate(metric: str, selector: str, by: str = "") -> str:
    grouped = f" by ({by})" if by else ""
    return f"sum{grouped} (rate({metric}{{{selector}}}[$__rate_interval]))"


HOST_ROWS = [
    Row("Host", [
        Panel("CPU busy", [(f'1 - avg by (instance) (rate(inferwatch_host_cpu_seconds_total'
                            f'{{{HOST}, mode="idle"}}[$__rate_interval]) '
                            f'/ on (instance) group_left inferwatch_host_cpus{{{HOST}}})',
                            "{{instance}}")], "percentunit", width=8),
        Panel("Memory available", [(f"inferwatch_host_memory_available_bytes{{{HOST}}} / "
                                    f"inferwatch_host_memory_total_bytes{{{HOST}}}",
                                    "{{instance}}")], "percentunit", width=8),
        Panel("Pressure stall (PSI)", [(_rate("inferwatch_host_pressure_stalled_seconds_total",
                                              HOST, "instance, resource"),
                                        "{{instance}} {{resource}}")], "percentunit", width=8,
              description="Share of time some task waited for the resource."),
        Panel("Filesystem space available", [(
            f"inferwatch_host_filesystem_avail_bytes{{{HOST}}} / "
            f"inferwatch_host_filesystem_size_bytes{{{HOST}}}",
            "{{instance}} {{mountpoint}}")], "percentunit", width=8),
        Panel("Network", [(_rate("inferwatch_host_network_receive_bytes_total", HOST,
                                 "instance, device"), "{{instance}} {{device}} in"),
                          (_rate("inferwatch_host_network_transmit_bytes_total", HOST,
                                 "instance, device"), "{{instance}} {{device}} out")],
              "Bps", width=8),
        Panel("Model server processes", [(f"inferwatch_host_process_resident_memory_bytes"
                                          f"{{{HOST}}}", "{{instance}} {{process}}")],
              "bytes", width=8, description="RSS of the processes [[plugins.host.processes]] "
                                             "watches."),
    ]),
    Row("GPUs", [
        Panel("GPU utilisation", [(f'inferwatch_gpu_utilization_ratio{{{GPU}, engine="gpu"}}',
                                   "{{instance}} GPU {{gpu}}")], "percentunit", width=8),
        Panel("GPU memory used", [(f"inferwatch_gpu_memory_used_bytes{{{GPU}}} / "
                                   f"inferwatch_gpu_memory_total_bytes{{{GPU}}}",
                                   "{{instance}} GPU {{gpu}}")], "percentunit", width=8),
        Panel("Power against the limit", [(f"inferwatch_gpu_power_watts{{{GPU}}}",
                                           "{{instance}} GPU {{gpu}}"),
                                          (f"inferwatch_gpu_power_limit_watts{{{GPU}}}",
                                           "{{instance}} GPU {{gpu}} limit")], "watt", width=8),
        Panel("Temperature", [(f'inferwatch_gpu_temperature_celsius{{{GPU}, sensor="gpu"}}',
                               "{{instance}} GPU {{gpu}}")], "celsius", width=8),
        Panel("Throttle reasons", [(f"inferwatch_gpu_throttle_active{{{GPU}}} > 0",
                                    "{{instance}} GPU {{gpu}} {{reason}}")], width=8,
              kind="state-timeline",
              description="Reasons the clocks are held down (1 while active)."),
        Panel("PCIe link against its maximum", [
            (f"inferwatch_gpu_pcie_link_generation{{{GPU}}} / "
             f"inferwatch_gpu_pcie_link_generation_max{{{GPU}}}", "{{instance}} GPU {{gpu}} gen"),
            (f"inferwatch_gpu_pcie_link_width{{{GPU}}} / "
             f"inferwatch_gpu_pcie_link_width_max{{{GPU}}}", "{{instance}} GPU {{gpu}} width")],
              "percentunit", width=8),
        Panel("XID errors", [(f"sum by (instance, gpu, xid) "
                              f"(increase(inferwatch_gpu_xid_errors_total{{{GPU}}}[1h]))",
                              "{{instance}} GPU {{gpu}} XID {{xid}}")], width=12, kind="bargauge"),
        Panel("GPUs up and NVML", [(f"inferwatch_gpu_up{{{GPU}}}", "{{instance}} GPU {{gpu}}"),
                                   (f"inferwatch_gpu_nvml_up{{{HOST}}}", "{{instance}} NVML")],
              width=12, kind="state-timeline"),
    ]),
]

XID = f"inferwatch_gpu_xid_errors_total{{{HOST}}}"
XID_ANNOTATION = {
    "name": "XID errors", "datasource": DS, "enable": True, "iconColor": "red",
    # A GPU's first XID of a kind creates its series at 1, which changes() cannot see: a
    # series that is new within the interval counts too.
    "expr": f"sum by (instance, gpu, xid) ((changes({XID}[$__interval]) > 0) "
            f"or ({XID} unless {XID} offset $__interval))",
    "titleFormat": "XID {{xid}}", "textFormat": "{{instance}} GPU {{gpu}}",
    "useValueForTime": False, "step": "15s",
}

Q = MODEL  # short alias for the model selector in the rows below
MODEL_ROWS = [
    Row("Quality: realized against estimated", [
        Panel("Accuracy, realized and estimated (band: the estimate's error)", [
            (f"inferwatch_model_accuracy{{{Q}}}", "{{model}} v{{model_version}} realized"),
            (f"inferwatch_model_estimated_accuracy{{{Q}}}",
             "{{model}} v{{model_version}} estimated"),
            (f"inferwatch_model_estimated_accuracy{{{Q}}} + on (instance, model, model_version,"
             f' window) inferwatch_model_estimation_error{{{Q}, metric="accuracy"}}',
             "{{model}} v{{model_version}} estimate high"),
            (f"inferwatch_model_estimated_accuracy{{{Q}}} - on (instance, model, model_version,"
             f' window) inferwatch_model_estimation_error{{{Q}, metric="accuracy"}}',
             "{{model}} v{{model_version}} estimate low")], "percentunit"),
        Panel("F1, precision, recall", [
            (f"inferwatch_model_f1{{{Q}}}", "{{model}} v{{model_version}} F1 {{class}}"),
            (f"inferwatch_model_precision{{{Q}}}", "{{model}} v{{model_version}} precision"),
            (f"inferwatch_model_recall{{{Q}}}", "{{model}} v{{model_version}} recall"),
            (f"inferwatch_model_estimated_f1{{{Q}}}", "{{model}} v{{model_version}} F1 est.")],
              "percentunit"),
        Panel("Concept drift: realized minus estimated", [
            (f"inferwatch_model_estimation_gap{{{Q}}}",
             "{{model}} v{{model_version}} {{metric}}")], "percentunit",
              description="A gap beyond the estimate's error band means the relation between "
                          "inputs and labels changed."),
        Panel("Quality thresholds crossed", [
            (f"inferwatch_model_quality_degraded{{{Q}}}", "{{model}} v{{model_version}} "
                                                           "{{metric}}")],
              kind="state-timeline"),
    ]),
    Row("Drift", [
        Panel("Drift score per feature (effect over threshold)", [
            (f"max by (feature) (inferwatch_drift_top_feature_score{{{Q}}})", "{{feature}}")],
              kind="heatmap", width=16,
              description="The most drifting features; 1 is the threshold at this window's "
                          "sample size."),
        Panel("Drift declared", [(f"inferwatch_drift_detected{{{Q}}}",
                                  "{{model}} v{{model_version}}"),
                                 (f"sum by (model, model_version) "
                                  f"(inferwatch_drift_feature_drifted{{{Q}}})",
                                  "{{model}} v{{model_version}} features drifted")], width=8),
        Panel("Wasserstein distance per feature (reference sigmas)", [
            (f'inferwatch_drift_score{{{Q}, method="wasserstein"}}', "{{feature}}")]),
        Panel("Multivariate (correlation) change", [
            (f"inferwatch_drift_multivariate_score{{{Q}}}", "{{model}} score"),
            (f"inferwatch_drift_multivariate_threshold{{{Q}}}", "{{model}} threshold")]),
    ]),
    Row("Data quality and labels", [
        Panel("Feature issues (share of rows)", [
            (f"inferwatch_model_feature_issue_ratio{{{Q}}}", "{{feature}} {{issue}}")],
              "percentunit", width=8),
        Panel("Samples and labels", [
            (_rate("inferwatch_samples_received_total", 'instance=~"$host", model=~"$model"',
                   "model"), "{{model}} samples"),
            (_rate("inferwatch_labels_received_total", 'instance=~"$host", model=~"$model"',
                   "model"), "{{model}} labels"),
            (_rate("inferwatch_labels_joined_total", 'instance=~"$host", model=~"$model"',
                   "model"), "{{model}} joined")], "reqps", width=8),
        Panel("Labelled share of the window", [
            (f"inferwatch_model_window_labeled_samples{{{Q}}} / "
             f"inferwatch_model_window_samples{{{Q}}}", "{{model}} v{{model_version}}")],
              "percentunit", width=8,
              description="Labels arrive late; a share that stops rising means they stopped."),
        Panel("Predictions waiting for their label", [
            (f"inferwatch_label_join_waiting{{{HOST}}}", "{{instance}} {{kind}}")], width=8),
        Panel("Cost", [(f"inferwatch_model_cost{{{Q}}}", "{{model}} v{{model_version}} "
                                                          "{{currency}}")], width=8),
        Panel("Fairness: TPR and FPR per group", [
            (f"inferwatch_model_group_true_positive_rate{{{Q}}}", "{{group}} TPR"),
            (f"inferwatch_model_group_false_positive_rate{{{Q}}}", "{{group}} FPR"),
            (f"inferwatch_model_equalized_odds_difference{{{Q}}}", "equalized odds gap")],
              "percentunit", width=8),
    ]),
]

AGENT_ROWS = [
    Row("Plugins", [
        Panel("Components up", [(f"inferwatch_plugin_up{{{HOST}}}",
                                 "{{instance}} {{plugin}}/{{component}}")], width=12,
              kind="state-timeline"),
        Panel("Collection time", [(
            f"sum by (instance, plugin) (rate(inferwatch_collector_duration_seconds_sum"
            f"{{{HOST}}}[$__rate_interval]))", "{{instance}} {{plugin}}")], "percentunit",
              description="Seconds spent collecting per second, per plugin."),
        Panel("Errors and restarts", [
            (f"sum by (instance, plugin) (increase(inferwatch_plugin_errors_total{{{HOST}}}"
             "[$__range])) or sum by (instance) (inferwatch_plugin_up{" + HOST + "}) * 0",
             "{{instance}} {{plugin}} errors")], width=8, kind="bargauge",
              description="Plugin failures over the range; zero when none (the counter "
                          "appears at the first error)."),
        Panel("Agent CPU and memory", [
            (f"rate(inferwatch_process_cpu_seconds_total{{{HOST}}}[$__rate_interval])",
             "{{instance}} CPU"),
            (f"inferwatch_process_resident_memory_bytes{{{HOST}}} / 1e9",
             "{{instance}} RSS (GB)")], width=8),
        Panel("Event queue", [(f"inferwatch_event_queue_depth{{{HOST}}}", "{{instance}}")],
              width=8),
    ]),
    Row("Delivery", [
        Panel("Outbox backlog", [(f"inferwatch_outbox_depth{{{HOST}}}",
                                  "{{instance}} {{sink}} events"),
                                 (f"inferwatch_outbox_oldest_age_seconds{{{HOST}}}",
                                  "{{instance}} {{sink}} oldest (s)")], width=8),
        Panel("Events emitted and delivered", [
            (_rate("inferwatch_events_emitted_total", HOST, "instance, kind"),
             "{{instance}} {{kind}}"),
            (_rate("inferwatch_sink_delivered_total", HOST, "instance, sink"),
             "{{instance}} delivered to {{sink}}")], "reqps", width=8),
        Panel("Events dropped", [(f"sum by (instance, sink, reason) "
                                  f"(increase(inferwatch_outbox_dropped_total{{{HOST}}}[$__range]))",
                                  "{{instance}} {{sink}} {{reason}}")], width=8, kind="bargauge"),
    ]),
    Row("Ingestion", [
        Panel("Samples received", [(_rate("inferwatch_samples_received_total", HOST,
                                          "instance, model"), "{{instance}} {{model}}")],
              "reqps", width=8),
        Panel("Records rejected, by reason", [(_rate("inferwatch_samples_rejected_total", HOST,
                                                     "instance, reason"),
                                               "{{instance}} {{reason}}")], "reqps", width=8),
        Panel("Bytes received", [(_rate("inferwatch_ingest_received_bytes_total", HOST,
                                        "instance"), "{{instance}}")], "Bps", width=8),
    ]),
]

DASHBOARDS = {
    "inferwatch-host.json": dashboard("inferwatch-host", "inferwatch: host and GPUs", HOST_ROWS,
                                      GPU_VARS, [XID_ANNOTATION]),
    "inferwatch-models.json": dashboard("inferwatch-models", "inferwatch: models", MODEL_ROWS,
                                        MODEL_VARS),
    "inferwatch-agent.json": dashboard("inferwatch-agent", "inferwatch: the agent", AGENT_ROWS,
                                       [HOST_VAR]),
}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the dashboards; with --check, only say (exit 1) which files are stale."""
    stale = [name for name, board in DASHBOARDS.items()
             if not (HERE / name).exists() or (HERE / name).read_text() != render(board)]
    if "--check" in argv:
        for name in stale:
            print(f"{name} is stale: run python contrib/grafana/build.py", file=sys.stderr)
        return 1 if stale else 0
    for name, board in DASHBOARDS.items():
        (HERE / name).write_text(render(board))
    print(f"wrote {', '.join(DASHBOARDS)} in {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
