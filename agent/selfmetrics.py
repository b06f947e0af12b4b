"""The agent's own health series, on the agent's registry (never prometheus_client's global one)."""

from __future__ import annotations

import contextlib
import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    disable_created_metrics,
)
from prometheus_client.process_collector import ProcessCollector

from agent import __version__
from agent.exposition import Exposition
from agent.metrics import SnapshotCollector

_COMPONENT = ("plugin", "component")


class SelfMetrics:
    """Everything an SRE needs to tell whether the agent itself is healthy."""

    def __init__(self) -> None:
        # `_created` series double every counter's cardinality and Prometheus ignores them in
        # the text format; a process-wide switch in prometheus-client, and the agent is the process.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.snapshots = SnapshotCollector()
        ProcessCollector(namespace="inferwatch", registry=self.registry)
        reg = self.registry
        info = Gauge(
            "inferwatch_build_info", "Agent build; the value is always 1.",
            ["version", "python_version"], registry=reg,
        )
        info.labels(__version__, platform.python_version()).set(1)
        self.plugin_up = Gauge(
            "inferwatch_plugin_up", "1 while a plugin component runs and its last work succeeded.",
            _COMPONENT, registry=reg,
        )
        self.plugin_errors = Counter(
            "inferwatch_plugin_errors_total",
            "Failures of a plugin component, by reason (exception, timeout, start).",
            [*_COMPONENT, "reason"], registry=reg,
        )
        self.plugin_restarts = Counter(
            "inferwatch_plugin_restarts_total", "Times a component was restarted after a failure.",
            _COMPONENT, registry=reg,
        )
        self.collect_duration = Summary(
            "inferwatch_collector_duration_seconds", "Wall time of successful collections.",
            _COMPONENT, registry=reg,
        )
        self.collect_last_success = Gauge(
            "inferwatch_collector_last_success_timestamp_seconds",
            "Unix time of the last successful collection.", _COMPONENT, registry=reg,
        )
        self.skipped_ticks = Counter(
            "inferwatch_collector_skipped_ticks_total",
            "Collection ticks skipped because the previous collection had not finished.",
            _COMPONENT, registry=reg,
        )
        self.series_refused = Counter(
            "inferwatch_plugin_series_refused_total",
            "Series a plugin produced beyond its series budget, refused.", ["plugin"], registry=reg,
        )
        self.event_queue_depth = Gauge(
            "inferwatch_event_queue_depth", "Events waiting for dispatch to sinks.", registry=reg,
        )
        self.events_emitted = Counter(
            "inferwatch_events_emitted_total", "Events accepted onto the bus, by kind.",
            ["kind"], registry=reg,
        )
        self.events_dropped = Counter(
            "inferwatch_events_dropped_total",
            "Events dropped, by reason (queue_full, sink_full, stopped, rejected).", ["reason"],
            registry=reg,
        )
        self.windows_dropped = Counter(
            "inferwatch_windows_dropped_total",
            "Windows a monitor could not take because its queue was full, by plugin.",
            ["plugin", "component"], registry=reg,
        )
        self.loop_lag = Histogram(
            "inferwatch_event_loop_lag_seconds",
            "How late the event loop woke a 50 ms timer: how long something held the loop.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=reg,
        )
        self.loop_lag_max = Gauge(
            "inferwatch_event_loop_lag_max_seconds",
            "The worst event-loop lag since the agent started.", registry=reg,
        )
        self.loop_blocked_max = Gauge(
            "inferwatch_event_loop_blocked_max_seconds",
            "The worst event-loop lag since start not spent waiting for a CPU: the agent's own.",
            registry=reg,
        )
        self.plugin_cpu = Counter(
            "inferwatch_plugin_cpu_seconds_total",
            "CPU time spent in a collector's collections (its worker thread's own time, and "
            "that of threads it hands work to).",
            _COMPONENT, registry=reg,
        )
        self.collect_interval = Gauge(
            "inferwatch_collector_interval_seconds",
            "A collector's effective interval: its configured one, stretched while the agent "
            "is over its budget.", _COMPONENT, registry=reg,
        )
        self.budget_exceeded = Gauge(
            "inferwatch_agent_budget_exceeded",
            "1 while the agent is over its own budget ([agent] cpu_percent, rss_bytes).",
            ["resource"], registry=reg,
        )
        self.reload_success = Gauge(
            "inferwatch_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded.", registry=reg,
        )
        self.reload_time = Gauge(
            "inferwatch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.", registry=reg,
        )

    def exposition(self) -> Exposition:
        return Exposition(self.registry, self.snapshots)

    def forget(self, plugin: str, component: str) -> None:
        """Remove a component's series when it is stopped for good (no stale series)."""
        for metric in (self.plugin_up, self.plugin_restarts, self.collect_duration,
                       self.collect_last_success, self.skipped_ticks, self.windows_dropped,
                       self.plugin_cpu, self.collect_interval):
            _remove(metric, plugin, component)
        for reason in ("exception", "timeout", "start"):
            _remove(self.plugin_errors, plugin, component, reason)


def _remove(metric: Gauge | Counter | Summary, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
