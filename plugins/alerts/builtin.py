"""The rules shipped for an inference host (`builtin_rules = true`); docs/alerts.md says why
each threshold is what it is. Each can be switched off by name (`disabled_rules`) or replaced
by a user rule of the same name."""

from __future__ import annotations

from agent.config import Duration
from plugins.alerts.config import RuleConfig

_M = 60.0
_H = 3600.0
RUNBOOK = "https://github.com/inferwatch/inferwatch/blob/main/docs/alerts.md#"
_GPU = "GPU ${labels.gpu} (${labels.model})"
_MODEL = "${labels.model} ${labels.model_version}"
# XIDs that mean the GPU or its memory needs a reset or service (NVIDIA's XID catalogue).
CRITICAL_XIDS = "48|61|62|63|64|74|79|92|94|95"


def _d(seconds: float) -> Duration:
    return Duration(seconds)


def _rule(name: str, **keys: object) -> RuleConfig:
    keys.setdefault("runbook_url", RUNBOOK + name.lower())
    return RuleConfig(name=name, **keys)  # type: ignore[arg-type]


def _gpu_rules() -> list[RuleConfig]:
    return [
        _rule("GpuXidCritical", severity="critical", event="gpu.xid",
              matchers=[f'xid=~"{CRITICAL_XIDS}"'], group_by=["gpu", "uuid", "model", "xid"],
              value_from="data.xid", resolve_after=_d(6 * _H),
              summary=f"{_GPU}: XID ${{data.xid}}",
              description="XID ${data.xid}: ${data.description}. The GPU likely needs a "
                          "reset or a drain."),
        _rule("GpuLost", severity="critical", event="gpu.lost", group_by=["gpu", "uuid", "model"],
              resolve_after=_d(1 * _H), summary=f"{_GPU} stopped answering (fallen off the bus)"),
        _rule("GpuDown", severity="critical", metric="inferwatch_gpu_up", op="==", fire=0,
              for_=_d(2 * _M), summary=f"{_GPU} has not been readable for 2 minutes"),
        _rule("NvmlDown", severity="critical", metric="inferwatch_gpu_nvml_up", op="==",
              fire=0, for_=_d(2 * _M), summary="NVML is not answering on ${host}"),
        _rule("GpuThrottlingSustained", metric="inferwatch_gpu_throttle_active",
              matchers=['reason=~"sw_thermal_slowdown|hw_thermal_slowdown|sw_power_cap|'
                        'hw_power_brake_slowdown|hw_slowdown"'],
              op="==", fire=1, for_=_d(10 * _M), keep_firing_for=_d(5 * _M),
              summary=f"{_GPU} throttled (${{labels.reason}}) for 10 minutes"),
        _rule("GpuEccUncorrectable", severity="critical", metric="inferwatch_gpu_ecc_errors_total",
              matchers=['error="uncorrected"', 'scope="volatile"'], function="increase",
              range=_d(1 * _H), op=">", fire=0,
              summary=f"{_GPU}: $value uncorrectable ECC errors in the last hour"),
    ]


def _host_rules() -> list[RuleConfig]:
    return [
        _rule("FilesystemNearlyFull", metric="inferwatch_host_filesystem_avail_bytes",
              divide_by="inferwatch_host_filesystem_size_bytes", op="<", fire=0.10,
              clear=0.15, for_=_d(5 * _M),
              summary="${labels.mountpoint} has ${value} of its space left",
              description="The state dir (outbox, references) and model storage stop "
                          "accepting writes when full."),
        _rule("MemoryPressure", metric="inferwatch_host_pressure_stalled_seconds_total",
              matchers=['resource="memory"'], function="rate", range=_d(5 * _M), op=">",
              fire=0.10, clear=0.05, for_=_d(5 * _M),
              summary="Tasks stalled on memory ${value} of the time (PSI) on ${host}"),
        _rule("ModelServerDown", severity="critical", metric="inferwatch_host_process_up",
              op="==", fire=0, for_=_d(1 * _M),
              summary="No process matches ${labels.process} on ${host}"),
    ]


def _model_rules() -> list[RuleConfig]:
    quality = {"event": "quality.degraded", "clear_event": "quality.recovered",
               "group_by": ["model", "model_version", "window", "metric"],
               "value_from": "data.value", "resolve_after": _d(24 * _H)}
    return [
        _rule("ModelNoSamples", metric="inferwatch_samples_received_total",
              function="increase", range=_d(15 * _M), op="<=", fire=0,
              summary="No samples from ${labels.model} for 15 minutes (it had traffic)"),
        _rule("ModelLabelsStopped", metric="inferwatch_labels_received_total",
              function="increase", range=_d(6 * _H), op="<=", fire=0,
              summary="No labels for ${labels.model} for 6 hours"),
        _rule("ModelQualityDegraded", matchers=['metric!~".*_gap"'], **quality,
              summary=f"{_MODEL}: ${{labels.metric}} is ${{value}} (threshold "
                      "${data.threshold})",
              description="Window ${labels.window}, ${data.samples} labelled rows; realized "
                          "${data.evidence.metrics}, estimated ${data.evidence.estimated}."),
        _rule("ConceptDriftGap", matchers=['metric=~".*_gap"'], **quality,
              summary=f"{_MODEL}: realized minus estimated ${{labels.metric}} is ${{value}}",
              description="Realized ${data.evidence.metrics} against label-free estimates "
                          "${data.evidence.estimated}: the relation between inputs and "
                          "labels changed (concept drift)."),
        _rule("DriftPersisted", event="drift.detected", clear_event="drift.resolved",
              group_by=["model", "model_version", "window"], resolve_after=_d(24 * _H),
              summary=f"{_MODEL}: input drift persisted (window ${{labels.window}})",
              description="Drifted features: ${data.top_features}."),
        _rule("IngestRejecting", metric="inferwatch_samples_rejected_total",
              divide_by="inferwatch_samples_received_total", function="increase",
              range=_d(10 * _M), op=">", fire=0.05, clear=0.02, for_=_d(5 * _M),
              summary="${labels.model}: ${value} of records rejected (${labels.reason})"),
    ]


def _agent_rules() -> list[RuleConfig]:
    return [
        _rule("PluginDown", metric="inferwatch_plugin_up", op="==", fire=0, for_=_d(5 * _M),
              summary="${labels.plugin}.${labels.component} has been down for 5 minutes"),
        _rule("OutboxBacklog", metric="inferwatch_outbox_oldest_age_seconds", op=">",
              fire=600, clear=300, for_=_d(5 * _M),
              summary="Outbox ${labels.sink}: oldest event waits ${value} s"),
        # The core's durable sinks (webhook, exec, Alertmanager's outbox, third-party ones).
        # MQTT exports this series too (plugin="mqtt"), already covered by OutboxBacklog.
        _rule("SinkBacklog", metric="inferwatch_sink_oldest_age_seconds",
              matchers=['plugin!="mqtt"'], op=">", fire=600, clear=300, for_=_d(5 * _M),
              summary="Sink ${labels.plugin}/${labels.sink}: oldest event waits ${value} s",
              description="Events wait in the sink's outbox while its receiver refuses or is "
                          "unreachable; past outbox_max_age or outbox_max_bytes the oldest "
                          "are dropped."),
    ]


def builtin_rules() -> list[RuleConfig]:
    return [*_gpu_rules(), *_host_rules(), *_model_rules(), *_agent_rules()]


BUILTIN_NAMES = frozenset(r.name for r in builtin_rules())
